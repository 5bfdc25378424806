"""The unit service reading a demo clip from an IP camera: a real RTSP server on loopback (gst-rtsp-server
in a child process, H.264 encoded from the clip's frames in real time), the `rtsp` camera kind, the
clip's sensor edges on gpiozero's mock pins at their wall times. The server is killed (SIGKILL) after
the first vehicle and started again later: the camera is reported lost meanwhile, the source
reconnects, no burst opened after the loss is given a frame from before it, nothing crashes and no
read is sealed twice."""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

from unit import clips, status
from unit.buffer import read_stats
from unit.burst import FrameWork, Open
from unit.commands.status import render
from unit.config import parse
from unit.service import UnitService
from wire import seal

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT / "hil" / "clips" / "01-day-one-lane"

gst = pytest.importorskip("unit.sources.gstreamer")
try:
    gst.gst()
    import gi
    gi.require_version("GstRtspServer", "1.0")
except (gst.CameraUnavailable, ValueError) as exc:
    pytest.skip(f"GStreamer or gst-rtsp-server not installed: {exc}", allow_module_level=True)

from hil.harness import SensorPlayer          # noqa: E402
from hil.rtsp_server import CameraServer      # noqa: E402

KILL_AT, RESTART_AT = 2.5, 3.0     # clip seconds: after vehicle 1 (1.2-2.2); back (it takes a second
                                    # or two to listen) around vehicle 2 (3.6-4.6), before vehicle 3 (6.0)


def rtsp_config(tmp_path: Path, clip: clips.Clip, url: str):
    return parse({
        "unit_id": "rtsp-test", "site": "loopback",
        "central": {"public_key": seal.sealing_public_b64(X25519PrivateKey.generate().public_key())},
        "buffer": {"path": str(tmp_path / "buffer.sqlite")},
        "health": {"status_path": str(tmp_path / "status.json"), "interval_s": 0.2},
        "camera": {"kind": "rtsp", "resolution": clip.capture["resolution"], "fps": clip.capture["fps"],
                   "pre_trigger_frames": 3, "burst_frames": 5, "burst_fps": 10, "stall_after_s": 3,
                   "rtsp": {"url": url, "transport": "tcp", "latency_ms": 200}},
        "lanes": clip.lanes,
        "log": {"level": "WARNING", "format": "text"},
    })


@pytest.fixture
def pins():
    Device.pin_factory = MockFactory()
    yield
    Device.pin_factory.reset()


def test_rtsp_camera_killed_and_restarted_mid_clip(tmp_path, pins, caplog):
    clip = clips.load(CLIP)
    truth = {v.plate: v.t for v in clip.truth.vehicles}
    server = CameraServer(CLIP, t0=time.time() + 2.0).start()
    t0 = server.t0
    cfg = rtsp_config(tmp_path, clip, server.url)
    from unit.sources import open_source
    svc = UnitService(cfg, open_source(cfg), clock=time.time, live=True, env={})
    svc.unit.reopen_backoff_s = (0.5, 1.0)

    work: list[tuple[str, float, list[str]]] = []          # what the trigger stage handed on, in order
    emit = svc.unit.assembler.emit

    def recording_emit(item):
        if isinstance(item, Open):
            work.append(("open", item.trigger.edge_t, [item.trigger.read_id]))
        elif isinstance(item, FrameWork):
            work.append(("frame", item.frame.t, list(item.read_ids)))
        emit(item)
    svc.unit.assembler.emit = recording_emit
    reads = []
    svc.unit.stage.listeners.append(lambda read, info: reads.append(read))
    states: list[tuple[float, str, str]] = []
    caplog.set_level(logging.WARNING)
    svc.start()
    sensors = SensorPlayer(clip, svc.unit, t0, {}).start()
    killed_at = restarted = None
    try:
        end = t0 + clip.duration_s + 1.5
        while time.time() < end:
            cam = svc.health.get("camera")
            states.append((time.time() - t0, cam.get("state", ""), cam.get("detail", "")))
            if killed_at is None and time.time() >= t0 + KILL_AT:
                server.kill()                                 # the camera loses power
                killed_at = time.time()
            if restarted is None and time.time() >= t0 + RESTART_AT:
                server.start()                                # and comes back, the clip running on
                restarted = time.time()
            time.sleep(0.05)
        alive = all(t.is_alive() for t in svc.unit._threads)
    finally:
        sensors.stop()
        svc.stop()
        server.stop()
    assert alive, "a unit thread died"
    assert not [t for t in threading.enumerate() if t.name.startswith("unit-")]

    # health: lost while the camera was gone, ok again after
    lost = [(t, d) for t, s, d in states if s == "lost"]
    assert lost and KILL_AT <= lost[0][0] <= KILL_AT + 3.0, states
    assert "reconnect" in " ".join(d for _, d in lost)
    assert states[-1][1] == "ok", states[-5:]
    stats = svc.unit.source.health()
    assert stats["lost"] >= 1 and stats["reconnects"] >= 1
    assert svc.health.counters.get("camera_gaps", 0) >= 1
    st = status.collect(cfg)                          # what `alpr-unit status` shows of it
    assert st["camera_stream"]["reconnects"] == stats["reconnects"] and st["camera_stream"]["frames"] > 30
    assert f"camera stream: rtsp {server.url}: " in render(st)

    # no burst opened after the loss was given a frame from before it
    opened = {ids[0]: t for kind, t, ids in work if kind == "open"}
    late = {rid for rid, t in opened.items() if t > killed_at}
    assert late, "no vehicle arrived after the camera was lost"
    for kind, t, ids in work:
        if kind == "frame" and late & set(ids):
            assert t > killed_at, f"a frame captured {killed_at - t:.2f} s before the loss went to a later burst"
    frames_before = [t for kind, t, _ in work if kind == "frame" and t < killed_at]
    frames_after = [t for kind, t, _ in work if kind == "frame" and t > killed_at]
    assert frames_before and frames_after, [(k, round(t - t0, 2)) for k, t, _ in work]

    # the first and the last vehicle read through H.264; nothing sealed twice
    plates = [r.plate for r in reads]
    assert "136ZED" in plates and "3DQK681" in plates, plates
    assert set(plates) <= set(truth) and len(plates) == len(set(plates))
    assert len({r.read_id for r in reads}) == len(reads)
    assert read_stats(cfg.buffer.path)["depth"] == len(reads)
    assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records if r.exc_info]
