"""End to end with real parts: MockFactory pins driven high and low, real photos through the real
pipeline and the real Recogniser (the shipped models), sealed reads in a real SQLite file."""
from __future__ import annotations

import base64
import io
import json
import shutil
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from gpiozero import Device
from gpiozero.pins.mock import MockFactory
from PIL import Image

from unit.buffer import SealedBuffer
from unit.config import load
from unit.sources.frames import ManualClock, decode_image
from unit.sources.pushed import QueueSource
from wire import seal
from wire.read import validate
from wire.times import utc_ms

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "unit" / "example-config.toml"
US = ROOT.parent / "shared" / "data" / "benchmark" / "endtoend" / "us"  # shared/ beside the repo


def truth(photo: Path) -> str:
    return (photo.with_suffix(".txt")).read_text().split("\t")[-1].strip()


# real photos, one plate each, with plates large in frame (a fixed unit is aimed so that they are)
PHOTOS = [US / n for n in ("us1.jpg", "wts-lg-000080.jpg", "wts-lg-000165.jpg")]


@pytest.fixture
def rig(tmp_path):
    central = X25519PrivateKey.generate()
    (tmp_path / "central-seal.pub").write_text(seal.sealing_public_b64(central.public_key()))
    text = (EXAMPLE.read_text()
            .replace("/var/lib/alpr-unit/buffer.sqlite", str(tmp_path / "buf.sqlite"))
            .replace("roi = [0.0, 0.3, 0.5, 1.0]", "roi = [0.0, 0.0, 1.0, 1.0]")
            .replace("roi = [0.5, 0.3, 1.0, 1.0]", "roi = [0.0, 0.0, 1.0, 1.0]")
            .replace("pre_trigger_frames = 3", "pre_trigger_frames = 2")
            .replace("burst_frames = 5", "burst_frames = 3")
            .replace("context_frame = false", "context_frame = true")
            .replace("min_read_confidence = 0.2", "min_read_confidence = 0.05")
            .replace("interval_s = 5", "interval_s = 0.2"))
    (tmp_path / "unit.toml").write_text(text)
    Device.pin_factory = MockFactory()
    yield tmp_path, central
    Device.pin_factory.reset()


def pass_vehicle(src: QueueSource, clock: ManualClock, pin, image, active_low: bool, frames: int = 3) -> float:
    """Ring frames, the sensor edge, a burst at 10 fps, the vehicle leaves. Returns the edge time."""
    for _ in range(2):
        src.push(image, clock.advance(1 / 15))
    src.join()
    edge = clock.advance(0.01)
    pin.drive_low() if active_low else pin.drive_high()
    for _ in range(frames):
        src.push(image, clock.advance(0.1))
    src.join()
    clock.advance(0.2)
    pin.drive_high() if active_low else pin.drive_low()
    return edge


def test_pins_drive_the_real_pipeline_to_sealed_reads(rig):
    from unit.service import Unit
    tmp, central = rig
    cfg = load(tmp / "unit.toml")
    clock = ManualClock()
    src = QueueSource(clock)
    # frames come faster than real time here: wait on backlog (as replay does) rather than drop (as live does)
    unit = Unit(cfg, src, clock=clock, live=False, env={})
    stored = []
    unit.stage.listeners.append(lambda read, info: stored.append(read))
    unit.start()
    assert unit.health.get("model")["state"] == "ok", unit.health.get("model")
    loop, beam = Device.pin_factory.pin(17), Device.pin_factory.pin(27)
    images = [decode_image(p) for p in PHOTOS]
    edges = []
    try:
        for i, image in enumerate(images):           # alternate lanes: loop (active low), beam (active high)
            pin, low = (loop, True) if i % 2 == 0 else (beam, False)
            clock.advance(20)                        # beyond the dedup window
            edges.append(pass_vehicle(src, clock, pin, image, low))
        # the last vehicle stops and goes on the loop again: still one vehicle, one read
        clock.advance(1)
        pass_vehicle(src, clock, loop, images[2], True)
        # a 10 ms blip on the loop is a glitch, not a vehicle
        loop.drive_low(); clock.advance(0.01); loop.drive_high()
        assert unit.wait_idle(60)
    finally:
        unit.stop()

    c = unit.health.counters
    assert c["bursts"] == 5 and c.get("glitches") == 1
    assert c.get("reads", 0) == len(stored) >= 2, c
    assert c.get("duplicates", 0) + c.get("no_plate", 0) + c.get("low_confidence", 0) + c["reads"] == 4

    buf = SealedBuffer(cfg.buffer.path)
    rows = buf.pending()
    assert {r.read_id for r in rows} == {r.read_id for r in stored}
    raw = Path(cfg.buffer.path).read_bytes() + Path(f"{cfg.buffer.path}-wal").read_bytes()
    hits = 0
    for row in rows:
        payload = seal.open_sealed(row.envelope, central, row.read_id)
        read = validate(payload)
        i = next(k for k, s in enumerate(stored) if s.read_id == row.read_id)
        assert payload == stored[i].to_payload()
        assert read.plate.encode() not in raw                         # sealed before it touched the disk
        lane_i = next(k for k, e in enumerate(edges) if read.trigger["edge_at"] == utc_ms(e))
        assert read.lane == ("in" if lane_i % 2 == 0 else "out")
        assert read.direction == read.lane
        assert read.trigger["sensor"] == ("loop:GPIO17" if lane_i % 2 == 0 else "ir_beam:GPIO27")
        assert read.unit_id == "gate3-east" and read.site == "port-north"
        assert read.model and all(read.model.values())
        assert Image.open(io.BytesIO(base64.b64decode(read.crop_jpeg_b64))).format == "JPEG"
        assert Image.open(io.BytesIO(base64.b64decode(read.context_jpeg_b64))).width <= 960
        assert read.candidates[0]["plate"] == read.plate
        hits += read.plate == truth(PHOTOS[lane_i])
    print(f"exact reads {hits}/{len(rows)}")
    assert hits >= 1
    buf.close()


def test_replay_cli_runs_stills_through_the_same_pipeline(rig, capsys, root_logging):
    from unit import cli
    tmp, central = rig
    stills = tmp / "stills"
    stills.mkdir()
    for p in PHOTOS[:2]:
        (stills / p.name).symlink_to(p)              # read from shared, never copied into the repo
    rc = cli.main(["replay", str(stills), "--config", str(tmp / "unit.toml"), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0, out
    assert out["counters"]["bursts"] == 2 and out["reads"] >= 1
    assert "plate" not in out["items"][0]            # plates are not shown unless asked
    buf = SealedBuffer(out["buffer_path"])
    ids = [r.read_id for r in buf.pending()]
    assert ids == [i["read_id"] for i in out["items"]]
    for r in buf.pending():
        validate(seal.open_sealed(r.envelope, central, r.read_id))
    buf.close()


def test_model_missing_at_start_is_picked_up_once_it_arrives(rig):
    from unit.service import Unit
    tmp, _ = rig
    models = tmp / "models"
    models.mkdir()
    text = (tmp / "unit.toml").read_text().replace('model_dir = ""', f'model_dir = "{models}"') \
        .replace("retry_model_s = 60", "retry_model_s = 1")
    (tmp / "unit.toml").write_text(text)
    cfg = load(tmp / "unit.toml")
    clock = ManualClock()
    src = QueueSource(clock)
    unit = Unit(cfg, src, clock=clock, env={})
    unit.start()
    try:
        assert unit.health.get("model")["state"] == "error"
        for name in ("detector.tflite", "reader.tflite"):
            shutil.copy(ROOT / "models" / name, models / name)     # an update delivers the models
        end = time.monotonic() + 10
        while time.monotonic() < end and unit.health.get("model").get("state") != "ok":
            time.sleep(0.1)
        assert unit.health.get("model")["state"] == "ok"
        pass_vehicle(src, clock, Device.pin_factory.pin(17), decode_image(PHOTOS[0]), True)
        assert unit.wait_idle(30)
        assert unit.health.counters.get("unrecognised", 0) == 0
        assert unit.health.counters.get("reads", 0) + unit.health.counters.get("no_plate", 0) == 1
    finally:
        unit.stop()


def test_live_backlog_drops_frames_counted_and_recovers(rig, caplog):
    """Vehicles back to back faster than recognition: live, frames are dropped (bounded memory), counted,
    reported, and the unit carries on."""
    from unit.service import Unit
    tmp, _ = rig
    cfg = load(tmp / "unit.toml")
    clock = ManualClock()
    src = QueueSource(clock)
    unit = Unit(cfg, src, clock=clock, live=True, env={})
    unit.start()
    loop = Device.pin_factory.pin(17)
    image = decode_image(PHOTOS[0])
    try:
        for _ in range(4):
            clock.advance(20)
            loop.drive_low()
            for _ in range(6):
                src.push(image, clock.advance(0.1))
            src.join()
            loop.drive_high()
        assert unit.wait_idle(60)
        c = unit.health.counters
        assert c.get("frames_dropped_backlog", 0) + c.get("frames_dropped_capture", 0) > 0, c
        assert any("backlog: dropping frames" in r.getMessage() for r in caplog.records)
        assert c["bursts"] == 4 and all(t.is_alive() for t in unit._threads)
        end = time.monotonic() + 3
        while time.monotonic() < end and unit.health.get("pipeline")["state"] != "ok":
            time.sleep(0.05)
        assert unit.health.get("pipeline")["state"] == "ok"            # caught up again
    finally:
        unit.stop()
