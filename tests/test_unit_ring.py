"""The pre-trigger ring never hands out old frames: not older than the burst window, not from before a
gap in the camera's frames. A camera that stops delivering gives a later vehicle no read (it used to
give it the first vehicle's frames: three reads of one plate, 14 s apart) and a health failure."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from gpiozero import Device

from unit import burst
from unit.burst import BurstAssembler, FrameWork, Open
from unit.config import CameraConfig, LaneConfig, load
from unit.sensors import Presence
from unit.sources import frames
from unit.sources.frames import Frame, ManualClock, decode_image
from unit.sources.pushed import QueueSource

from test_unit_e2e import rig  # noqa: E402,F401  (tests/ is on sys.path): the example config, whole-frame lanes

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT.parent / "shared" / "data" / "benchmark" / "endtoend" / "us" / "us1.jpg"


def frame(t: float, seq: int) -> Frame:
    return Frame(np.zeros((32, 32, 3), np.uint8), t, seq)


def test_the_ring_gives_only_recent_frames_and_forgets_at_a_gap():
    ring = burst.PreTriggerRing(3)
    for i, t in enumerate((10.0, 10.1, 10.2, 10.3, 10.4)):
        ring.push(frame(t, i))
    assert [f.t for f in ring.recent(10.45, 0.5)] == [10.2, 10.3, 10.4]     # the last three
    assert [f.t for f in ring.recent(10.75, 0.5)] == [10.3, 10.4]           # 10.2 is 0.55 s old
    assert ring.recent(24.4, 0.5) == []                                      # 14 s on: nothing
    ring.clear()
    assert len(ring) == 0 and ring.recent(10.45, 5.0) == []
    none = burst.PreTriggerRing(0)
    none.push(frame(1.0, 1))
    assert none.recent(1.0, 1.0) == []


def test_a_burst_starts_only_with_frames_from_its_window_and_after_a_gap():
    cam = CameraConfig()                                   # 3 ring frames; 5 frames at 10 fps: a 0.5 s window
    assert cam.burst_window_s == pytest.approx(0.5)
    lane = LaneConfig(name="in")
    out: list = []
    asm = BurstAssembler(cam, [lane], out.append)
    for i in range(3):
        asm.on_frame(frame(100.0 + i / 15, i))
    asm.on_presence(Presence("in", True, 100.2, "loop:GPIO17", "sensor"))
    first = [w for w in out if isinstance(w, FrameWork)]
    assert len(first) == 3                                 # the frames just before the edge
    asm.on_presence(Presence("in", False, 100.9, "loop:GPIO17", "sensor"))
    out.clear()
    asm.on_presence(Presence("in", True, 114.2, "loop:GPIO17", "sensor"))     # 14 s later, no frame since
    assert [type(w) for w in out] == [Open]               # no frame of the first vehicle
    asm.on_presence(Presence("in", False, 114.9, "loop:GPIO17", "sensor"))
    for i in range(3):
        asm.on_frame(frame(120.0 + i / 15, 10 + i))
    asm.on_gap(frames.Gap(120.15, "camera reopened"))
    out.clear()
    asm.on_presence(Presence("in", True, 120.2, "loop:GPIO17", "sensor"))
    assert [type(w) for w in out] == [Open]               # recent, but from before the gap


def test_a_camera_that_stops_gives_later_vehicles_no_read_and_a_health_failure(rig):
    """One vehicle with frames, then the camera delivers nothing while two more vehicles cross the loop,
    14 s apart (beyond the dedup window): one read, not three; the camera shows the failure."""
    from unit.service import Unit
    clock = ManualClock()
    src = QueueSource(clock)
    unit = Unit(load(rig[0] / "unit.toml"), src, clock=clock, env={})
    reads = []
    unit.stage.listeners.append(lambda read, info: reads.append(read))
    unit.start()
    loop = Device.pin_factory.pin(17)
    image = decode_image(PHOTO)
    try:
        assert unit.health.get("model")["state"] == "ok"
        for _ in range(3):
            src.push(image, clock.advance(1 / 15))
        src.join()
        clock.advance(0.01)
        loop.drive_low()                                   # vehicle 1: ring frames, then a burst
        for _ in range(3):
            src.push(image, clock.advance(0.1))
        src.join()
        clock.advance(0.2)
        loop.drive_high()
        assert unit.wait_idle(60)
        assert len(reads) == 1 and unit.health.get("camera")["state"] == "ok"
        for _ in range(2):                                 # the camera has stopped; vehicles 2 and 3 pass
            clock.advance(14)
            loop.drive_low()
            clock.advance(0.8)
            loop.drive_high()
            deadline = time.monotonic() + 10
            while unit.stage.bursts or unit.assembler.open:
                assert time.monotonic() < deadline
                time.sleep(0.02)
            assert unit.wait_idle(30)
    finally:
        unit.stop()
    c = unit.health.counters
    assert len(reads) == 1 and c.get("reads") == 1 and c["bursts"] == 3
    assert c.get("bursts_without_frames") == 2
    cam = unit.health.get("camera")       # (stalled instead, if the machine took over 5 s for all this)
    assert cam["state"] == "stalled" or (cam["state"] == "no_frames" and "got no frames" in cam["detail"])
    assert unit.health.overall()[0] == "degraded"


class Scripted:
    """A camera that hands out the given items (frames, a gap), then nothing."""
    live = True

    def __init__(self, items):
        self.items, self.clock = list(items), time.time

    def open(self):
        pass

    def close(self):
        pass

    def read(self, timeout):
        if self.items:
            return self.items.pop(0)
        time.sleep(timeout)
        return None


@pytest.mark.parametrize("gap", [False, True])
def test_a_gap_the_camera_itself_reports_empties_the_ring(rig, gap):
    """A source whose pipeline restarted by itself (a stream reconnected) returns a Gap from read()."""
    from unit.service import Unit
    now = time.time()
    items = [frame(now + i / 15, i) for i in range(2)] + ([frames.Gap(now + 0.2, "stream reconnected")] if gap else [])
    unit = Unit(load(rig[0] / "unit.toml"), Scripted(items), env={}, recogniser_factory=lambda: None)
    unit.start()
    try:
        deadline = time.monotonic() + 10
        while unit.source.items or unit.events.unfinished_tasks:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert len(unit.assembler.ring) == (0 if gap else 2)
    finally:
        unit.stop()
