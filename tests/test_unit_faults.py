"""Faults become a logged error and a health state, never a crash loop or a silent stop: bad frames,
a camera that stops or breaks, a missing or corrupt model, a full disk, a corrupt buffer file."""
from __future__ import annotations

import base64
import logging
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

from unit.buffer import SealedBuffer
from unit.config import load
from unit.pipeline import ModelHolder, RecognitionStage
from unit.sources.frames import BadFrame, Frame, ManualClock, decode_image
from unit.sources.pushed import QueueSource
from unit.sources.replay import ReplaySource
from wire import seal
from wire.read import Read, new_read_id
from wire.times import utc_ms

EXAMPLE = Path(__file__).resolve().parents[1] / "unit" / "example-config.toml"
US = Path(__file__).resolve().parents[2] / "shared" / "data" / "benchmark" / "endtoend" / "us"  # shared/ beside the repo
PHOTOS = sorted(str(p) for p in US.glob("*.jpg"))


def wait_for(pred, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.02)
    return False


@pytest.fixture
def cfgfile(tmp_path):
    key = X25519PrivateKey.generate()
    (tmp_path / "central-seal.pub").write_text(seal.sealing_public_b64(key.public_key()))
    (tmp_path / "models").mkdir()
    text = (EXAMPLE.read_text().replace("/var/lib/alpr-unit/buffer.sqlite", str(tmp_path / "buf.sqlite"))
            .replace("interval_s = 5", "interval_s = 0.1").replace("stall_after_s = 5", "stall_after_s = 0.3")
            .replace('model_dir = ""', f'model_dir = "{tmp_path / "models"}"'))
    (tmp_path / "unit.toml").write_text(text)
    Device.pin_factory = MockFactory()
    yield tmp_path / "unit.toml"
    Device.pin_factory.reset()


def errors(caplog, text):
    return [r for r in caplog.records if r.levelno >= logging.ERROR and text in r.getMessage()]


def test_bad_frames_are_logged_counted_and_skipped(cfgfile, caplog):
    """Frames the one frame check refuses are skipped; a grey one is converted and passed on as RGB."""
    from unit.service import Unit
    src = QueueSource()
    unit = Unit(load(cfgfile), src, env={})
    passed = []
    on_frame = unit.assembler.on_frame
    unit.assembler.on_frame = lambda frame: (passed.append(frame.image.shape), on_frame(frame))
    unit.start()
    try:
        good = decode_image(PHOTOS[0])
        src.push(good[:, :, 0])
        for bad in (np.zeros((0, 0, 3), np.uint8), good[:, :, :2], good.astype(np.float32), good[:4, :4]):
            src.push(bad)
        src.push(good)
        src.join()
        assert wait_for(lambda: unit.health.counters.get("frames") == 2 and len(passed) == 2)
        assert passed == [good.shape, good.shape]
        assert unit.health.counters["bad_frames"] == 4
        assert len(errors(caplog, "bad frame skipped")) == 1          # one line for a run, not one a frame
        assert unit.health.get("frames")["state"] == "bad" and "too small" in unit.health.get("frames")["detail"]
        assert "frames: bad" in unit.health.summary()
        assert unit.health.get("camera")["state"] == "ok"
        assert all(t.is_alive() for t in unit._threads)
    finally:
        unit.stop()


def test_truncated_jpeg_in_a_replay_is_skipped(tmp_path, cfgfile, caplog):
    stills = tmp_path / "stills"
    stills.mkdir()
    data = Path(PHOTOS[0]).read_bytes()
    (stills / "a_truncated.jpg").write_bytes(data[: len(data) // 2])
    (stills / "b_garbage.jpg").write_bytes(b"not a jpeg at all")
    shutil.copy(PHOTOS[1], stills / "c_good.jpg")
    with pytest.raises(BadFrame, match="cannot decode"):
        decode_image(stills / "a_truncated.jpg")
    from unit.service import Unit
    cfg = load(cfgfile)
    clock = ManualClock()
    src = ReplaySource(stills, cfg.camera, "in", clock=clock)
    unit = Unit(cfg, src, clock=clock, live=False, env={})
    unit.start()
    try:
        assert unit.wait_ended(30)
        per_still = cfg.camera.pre_trigger_frames + cfg.camera.burst_frames
        assert unit.health.counters["bad_frames"] == 2 * per_still
        assert unit.health.counters["frames"] == per_still
        assert errors(caplog, "bad frame skipped") and "truncated" in errors(caplog, "bad frame")[0].getMessage()
    finally:
        unit.stop()


def test_camera_that_stops_delivering_is_reported_stalled_and_recovers(cfgfile, caplog):
    from unit.service import Unit
    src = QueueSource()
    unit = Unit(load(cfgfile), src, env={})
    unit.reopen_backoff_s = (0.1, 0.2)
    unit.start()
    try:
        src.push(decode_image(PHOTOS[0]))
        assert wait_for(lambda: unit.health.get("camera").get("state") == "ok")
        assert wait_for(lambda: unit.health.get("camera").get("state") == "stalled")     # nothing for > 0.3 s
        assert errors(caplog, "camera stalled")
        assert "camera: stalled" in unit.health.summary()
        assert all(t.is_alive() for t in unit._threads)
        src.push(decode_image(PHOTOS[0]))
        assert wait_for(lambda: unit.health.get("camera").get("state") == "ok")
    finally:
        unit.stop()


class BrokenCamera:
    """A camera whose driver fails: open works, then reads raise for a while (cable pulled, ISP hang)."""

    def __init__(self, failures: int):
        self.failures, self.opens, self.seq = failures, 0, 0
        self.image = decode_image(PHOTOS[0])

    def open(self):
        self.opens += 1

    def close(self):
        pass

    def read(self, timeout):
        if self.failures > 0:
            self.failures -= 1
            raise RuntimeError("Camera frontend has timed out!")
        time.sleep(0.05)
        self.seq += 1
        return Frame(self.image, time.time(), self.seq)


def test_camera_errors_reopen_with_backoff_and_recover(cfgfile, caplog):
    from unit.service import Unit
    cam = BrokenCamera(failures=2)
    unit = Unit(load(cfgfile), cam, env={})
    unit.reopen_backoff_s = (0.1, 0.2)
    unit.start()
    try:
        assert wait_for(lambda: unit.health.get("camera").get("state") == "error", 2)
        assert errors(caplog, "Camera frontend has timed out")
        assert wait_for(lambda: unit.health.get("camera").get("state") == "ok", 8)
        assert cam.opens >= 3                                    # reopened after each failure
    finally:
        unit.stop()


@pytest.mark.parametrize("damage", ["missing", "corrupt"])
def test_missing_or_corrupt_model_degrades_but_keeps_running(cfgfile, caplog, damage):
    from unit.service import Unit
    models = cfgfile.parent / "models"
    if damage == "corrupt":
        (models / "detector.tflite").write_bytes(b"TFL3" + bytes(range(256)) * 4)
        (models / "reader.tflite").write_bytes(b"\x00" * 100)
    clock = ManualClock()
    src = QueueSource(clock)
    unit = Unit(load(cfgfile), src, clock=clock, env={})
    unit.start()
    try:
        assert unit.health.get("model")["state"] == "error"
        assert errors(caplog, "recogniser unavailable")
        pin = Device.pin_factory.pin(17)
        img = decode_image(PHOTOS[0])
        src.push(img)
        src.join()
        pin.drive_low()                                          # a vehicle (active-low loop)
        for _ in range(5):
            src.push(img, clock.advance(0.1))
        src.join()
        pin.drive_high()
        assert wait_for(lambda: unit.health.counters.get("unrecognised") == 1)
        assert unit.health.overall()[0] == "degraded"
        assert all(t.is_alive() for t in unit._threads)
    finally:
        unit.stop()


def a_read() -> Read:
    return Read(read_id=new_read_id(), unit_id="gate3-east", site="port-north", lane="in", direction="in",
                captured_at=utc_ms(time.time()), plate="7ABC123", region="us-ca", confidence=0.9,
                candidates=[{"plate": "7ABC123", "score": 0.9}], box=[1, 2, 3, 4], model={"reader": "x"},
                trigger={"sensor": "loop:GPIO17"}, crop_jpeg_b64=base64.b64encode(bytes(3000)).decode())


def test_full_disk_is_a_logged_error_and_a_health_state_then_recovers(cfgfile, caplog):
    from unit.health import Health
    cfg = load(cfgfile)
    buf = SealedBuffer(cfg.buffer.path)
    health = Health("u")
    stage = RecognitionStage(cfg, ModelHolder(cfg.recognition, health), buf, health)
    assert stage.store(a_read())
    pages = buf.db.execute("PRAGMA page_count").fetchone()[0]
    buf.db.execute(f"PRAGMA max_page_count = {pages}")           # the SD card is full
    results = [stage.store(a_read()) for _ in range(5)]
    assert results.count(False) >= 1
    assert health.get("buffer")["state"] == "full" and health.counters["store_failed"] >= 1
    assert errors(caplog, "disk full")
    buf.db.execute(f"PRAGMA max_page_count = {pages + 1000}")    # space again
    assert stage.store(a_read())
    assert health.get("buffer")["state"] == "ok"


def test_corrupt_buffer_file_is_moved_aside_and_a_new_one_started(cfgfile, caplog):
    from unit.health import Health
    from unit.service import open_buffer
    cfg = load(cfgfile)
    Path(cfg.buffer.path).write_bytes(b"this is not an sqlite database" * 100)
    health = Health("u")
    buf = open_buffer(cfg, health)
    assert buf is not None and buf.stats()["depth"] == 0
    assert health.get("buffer")["state"] == "recovered"
    kept = list(Path(cfg.buffer.path).parent.glob("buf.sqlite.corrupt-*"))
    assert kept and kept[0].read_bytes().startswith(b"this is not")
    assert errors(caplog, "is corrupt")
    buf.close()
