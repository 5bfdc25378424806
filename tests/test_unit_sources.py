"""Camera sources: the registry of kinds and their config tables, replay of stills and clips with an
injectable clock, pushed frames, the one frame check."""
from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from unit import sources
from unit.config import CameraConfig
from unit.sources.frames import (BadFrame, Edge, Frame, ManualClock, SourceEnded, check_frame, decode_image,
                                 encode_jpeg)
from unit.sources.pushed import QueueSource
from unit.sources.replay import ReplaySource

US = Path(__file__).resolve().parents[2] / "shared" / "data" / "benchmark" / "endtoend" / "us"  # shared/ beside the repo
PHOTOS = sorted(str(p) for p in US.glob("*.jpg"))
CAM = CameraConfig(kind="replay", fps=10, pre_trigger_frames=2, burst_frames=3, burst_fps=5)


def drain(src):
    out = []
    while True:
        try:
            out.append(src.read(0))
        except SourceEnded:
            return out


def test_stills_replay_one_vehicle_per_image_on_recorded_time(tmp_path):
    for p in PHOTOS[:2]:
        (tmp_path / Path(p).name).symlink_to(p)
    clock = ManualClock(1000.0)
    src = ReplaySource(tmp_path, CAM, "in", clock=clock, gap_s=5.0)
    assert src.frames == 2 * (2 + 3) and len(src) == 2 * (2 + 3 + 2)
    src.open()
    events = drain(src)
    kinds = ["E" if isinstance(e, Edge) else "F" for e in events]
    assert "".join(kinds) == "FFEFFFE" * 2
    edges = [e for e in events if isinstance(e, Edge)]
    assert [(e.lane, e.active) for e in edges] == [("in", True), ("in", False)] * 2
    frames = [e for e in events if isinstance(e, Frame)]
    assert frames[0].image is frames[4].image                      # decoded once per still
    assert frames[0].image.shape == decode_image(PHOTOS[0]).shape
    times = [e.t for e in events]
    assert times == sorted(times) and times[0] == 1000.0
    assert frames[3].t - frames[2].t == pytest.approx(0.2)        # burst at 5 fps
    assert edges[2].t - edges[1].t > 5.0                           # the gap between vehicles
    assert clock() == times[-1]                                    # the clock followed the replay
    assert [f.seq for f in frames] == list(range(1, 11))


def test_clip_replay_orders_edges_and_frames(tmp_path):
    for i, p in enumerate(PHOTOS[:3]):                 # copies: a clip's frames lie inside its folder
        shutil.copy(p, tmp_path / f"{i}.jpg")
    (tmp_path / "clip.json").write_text(json.dumps({
        "frames": [{"file": "0.jpg", "t": 0.0}, {"file": "1.jpg", "t": 0.5}, {"file": "2.jpg", "t": 1.0}],
        "edges": [{"t": 0.5, "lane": "out", "active": True}, {"t": 1.2, "lane": "out", "active": False}]}))
    src = ReplaySource(tmp_path, CAM, "in", clock=ManualClock(0.0), start=50.0)
    events = drain(src)
    desc = [(type(e).__name__, e.t) for e in events]
    assert desc == [("Frame", 50.0), ("Edge", 50.5), ("Frame", 50.5), ("Frame", 51.0), ("Edge", 51.2)]
    assert events[1].lane == "out"


def test_replay_source_rejects_what_is_not_a_clip(tmp_path):
    with pytest.raises(ValueError, match="no images"):
        ReplaySource(tmp_path, CAM, "in")
    (tmp_path / "clip.json").write_text("{not json")
    with pytest.raises(ValueError, match="clip.json: not valid JSON"):
        ReplaySource(tmp_path, CAM, "in")
    with pytest.raises(ValueError, match="must be a clip folder"):
        ReplaySource(tmp_path / "nope", CAM, "in")


def test_queue_source_join_means_the_loop_has_passed_the_frame_on():
    src = QueueSource(ManualClock(5.0))
    img = np.zeros((32, 32, 3), np.uint8)
    src.push(img)
    src.push(img, t=7.0)
    passed = []

    def loop():
        while True:
            try:
                f = src.read(0.5)
            except SourceEnded:
                return
            if f is not None:
                passed.append(f)
    t = threading.Thread(target=loop)
    t.start()
    src.join()
    assert [(f.t, f.seq) for f in passed] == [(5.0, 1), (7.0, 2)]
    src.end()
    t.join(2)
    assert not t.is_alive()


def test_frame_checks_and_jpeg_round_trip(tmp_path):
    good = decode_image(PHOTOS[0])
    assert check_frame(good) is good
    for bad, why in [(None, "no image"), ([1, 2], "not an array"), (np.zeros((0, 5, 3), np.uint8), "empty"),
                     (good[..., :2], "wrong shape"), (good[None], "wrong shape"), (good.astype(np.uint16), "wrong dtype"),
                     (good[:8, :8], "too small"), (good[:8, :8, 0], "too small")]:
        with pytest.raises(BadFrame, match=why):
            check_frame(bad)
    data = Path(PHOTOS[0]).read_bytes()
    with pytest.raises(BadFrame, match="cannot decode"):
        decode_image(data[:2000])
    with pytest.raises(BadFrame, match="cannot decode"):
        decode_image(b"")
    small = decode_image(encode_jpeg(good, 80, max_width=320))
    assert small.shape == (180, 320, 3)


def test_grey_and_four_channel_frames_become_rgb():
    """Infrared and machine-vision cameras give grey, capture pipelines often RGBA or RGBX: the one
    frame check (the capture loop's and the recogniser's) turns them into the RGB the unit reads."""
    rgb = decode_image(PHOTOS[0])
    grey = rgb[..., 1].copy()
    for frame in (grey, grey[..., None]):
        out = check_frame(frame)
        assert out.shape == rgb.shape and out.dtype == np.uint8
        assert (out[..., 0] == grey).all() and (out[..., 2] == grey).all()
    rgba = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], axis=2)
    out = check_frame(rgba)
    assert out.shape == rgb.shape and out.flags.c_contiguous and (out == rgb).all()


# -- the registry --------------------------------------------------------------------------------------------
def _config(tmp_path, camera: str):
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    from unit.config import load
    from wire import seal
    key = seal.sealing_public_b64(X25519PrivateKey.generate().public_key())
    (tmp_path / "unit.toml").write_text(f"""unit_id = "u1"
site = "s1"
[central]
public_key = "{key}"
{camera}
[[lanes]]
name = "a"
[[lanes]]
name = "b"
[lanes.sensor]
kind = "loop"
pin = 17
""")
    return load(tmp_path / "unit.toml")


def test_open_source_chooses_the_kind_the_config_names(tmp_path):
    for p in PHOTOS[:1]:
        (tmp_path / Path(p).name).symlink_to(p)
    cfg = _config(tmp_path, '[camera]\nkind = "replay"\n[camera.replay]\npath = "."')
    assert cfg.camera.options.path == str(tmp_path / ".")               # relative to the config file
    src = sources.open_source(cfg, realtime=False)
    assert isinstance(src, ReplaySource) and isinstance(src.clock, ManualClock) and not src.live
    src.open()
    events = [src.read(0) for _ in range(len(src))]
    assert [e.lane for e in events if isinstance(e, Edge)] == ["b", "b"]   # stills go to the lane with a sensor
    pi = sources.open_source(_config(tmp_path, '[camera]\n[camera.picamera2]\nshutter_us = 500'))
    from unit.sources.picamera import PiCameraSource
    assert isinstance(pi, PiCameraSource) and pi.opts.shutter_us == 500 and pi.live
    with pytest.raises(ModuleNotFoundError, match="picamera2"):          # only a Pi has it: opened, not imported
        pi.open()
    with pytest.raises(ValueError, match="camera.replay.path: expected a clip or stills folder"):
        sources.open_source(_config(tmp_path, '[camera]\nkind = "replay"'))


def test_a_new_kind_is_one_module_and_one_registry_line(tmp_path, monkeypatch):
    """What the next camera kinds (GStreamer, RTSP, V4L2, a Jetson's CSI camera) take: a module with an
    Options dataclass and an open function, and a line in KINDS. Its table is checked by the config
    with errors naming the key, and open_source builds it."""
    import sys
    import types
    from dataclasses import dataclass, field

    from unit.config import ConfigError
    from unit.schema import key

    mod = types.ModuleType("fake_v4l2")

    @dataclass(frozen=True)
    class Options:
        device: str = field(default="/dev/video0", metadata=key(nonempty=True))
        exposure: int = field(default=100, metadata=key(1, 10000))

        def capture_facts(self):
            return {"device": self.device}

    class Source(QueueSource):
        def __init__(self, cfg):
            super().__init__()
            self.cfg = cfg

    mod.KIND = sources.SourceKind(Options, lambda cfg, clock=None, realtime=True: Source(cfg))
    monkeypatch.setitem(sys.modules, "fake_v4l2", mod)
    monkeypatch.setitem(sources.KINDS, "v4l2", "fake_v4l2:KIND")

    cfg = _config(tmp_path, '[camera]\nkind = "v4l2"\n[camera.v4l2]\ndevice = "/dev/video2"')
    assert cfg.camera.options == Options(device="/dev/video2")
    src = sources.open_source(cfg)
    assert isinstance(src, Source) and src.cfg.camera.options.exposure == 100
    assert cfg.flat()["camera.v4l2.device"] == "/dev/video2"
    with pytest.raises(ConfigError, match="camera.v4l2.exposure: expected an integer from 1 to 10000, got 0"):
        _config(tmp_path, '[camera]\nkind = "v4l2"\n[camera.v4l2]\nexposure = 0')
    with pytest.raises(ConfigError, match="camera.kind: expected one of 'picamera2', 'replay', 'v4l2', got 'usb'"):
        _config(tmp_path, '[camera]\nkind = "usb"')
    with pytest.raises(ValueError, match="camera kind 'usb' is not one of"):
        sources.kind("usb")
