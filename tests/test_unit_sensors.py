"""Sensors through gpiozero's MockFactory, motion on real photos, and bursts from presence and frames."""
from __future__ import annotations


from pathlib import Path

import numpy as np
import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

from unit.burst import BurstAssembler, Close, Discard, FrameWork, Open
from unit.config import CameraConfig, LaneConfig, MotionConfig, SensorConfig
from unit.sensors import Lane, LaneSensor, MotionDetector, Presence
from unit.sources.frames import Frame, decode_image

US = Path(__file__).resolve().parents[2] / "shared" / "data" / "benchmark" / "endtoend" / "us"  # shared/ beside the repo
PHOTOS = sorted(str(p) for p in US.glob("*.jpg"))


@pytest.fixture
def pins():
    Device.pin_factory = MockFactory()
    yield Device.pin_factory
    Device.pin_factory.reset()


class Clock:
    def __init__(self, t=1000.0):
        self.t = t

    def __call__(self):
        return self.t


def lane(pin=17, kind="loop", **kw) -> LaneConfig:
    return LaneConfig(name="in", direction="in", sensor=SensorConfig(kind=kind, pin=pin if kind != "none" else None, **kw))


def test_active_low_pull_up_loop_gives_presence_and_absence_with_clock_times(pins):
    clock, got = Clock(), []
    s = LaneSensor(lane(active_high=False, pull_up=True), got.append, clock)
    pin = pins.pin(17)
    assert pin.state == 1 and not s.active           # pulled up: idle, no vehicle
    clock.t = 1001.0
    pin.drive_low()
    clock.t = 1001.5
    pin.drive_high()
    assert [(p.active, p.t, p.kind) for p in got] == [(True, 1001.0, "sensor"), (False, 1001.5, "sensor")]
    assert got[0].sensor == "loop:GPIO17" and s.edges == 2


def test_active_high_with_pull_up_is_honoured(pins):
    got = []
    s = LaneSensor(lane(active_high=True, pull_up=True), got.append, Clock())
    assert s.active                                  # pulled up and active high: reads as present at once
    pins.pin(17).drive_low()
    assert got and got[-1].active is False


def test_floating_input_needs_no_pull(pins):
    got = []
    s = LaneSensor(lane(active_high=True, pull_up=None, kind="radar"), got.append, Clock())
    assert pins.pin(17).pull == "floating"
    s.drive(True)
    s.drive(False)
    assert [p.active for p in got] == [True, False]


def test_stuck_sensor_is_reported_and_lane_falls_back_to_motion(pins):
    clock = Clock()
    ln = Lane(lane(stuck_after_s=60), MotionConfig(), lambda p: None, clock)
    pins.pin(17).drive_high()
    assert ln.mode(clock()) == "sensor"
    clock.t += 61
    assert ln.sensor_state(clock()) == "stuck" and ln.mode(clock()) == "motion"
    assert ln.health(clock())["state"] == "stuck"
    pins.pin(17).drive_low()                        # it comes back to life
    assert ln.sensor_state(clock()) == "ok"


def test_silent_sensor_while_camera_sees_traffic_is_reported(pins):
    clock = Clock()
    ln = Lane(lane(silent_after_motions=3), MotionConfig(quiet_frames=1), lambda p: None, clock)
    still = decode_image(PHOTOS[0])
    other = decode_image(PHOTOS[1])
    assert ln.on_frame(still, clock()) is None       # background
    for _ in range(2):                               # vehicles pass, the loop says nothing
        assert ln.on_frame(other, clock()) is None   # sensor mode: motion only watches
        assert ln.on_frame(still, clock()) is None
    assert ln.sensor_state(clock()) == "ok"
    ln.on_frame(other, clock())                      # the third one
    assert ln.sensor_state(clock()) == "silent" and ln.mode(clock()) == "motion"
    end = ln.on_frame(still, clock())                # now motion drives the lane
    assert end is not None and end.kind == "motion" and end.active is False
    pins.pin(17).drive_high()                        # an edge: the sensor works after all
    assert ln.sensor_state(clock()) == "ok"


def test_lane_without_working_sensor_triggers_on_motion(pins):
    clock = Clock()
    ln = Lane(lane(kind="none"), MotionConfig(quiet_frames=2), lambda p: None, clock)
    assert ln.mode(clock()) == "motion" and ln.health(clock())["state"] == "none"
    still, other = decode_image(PHOTOS[0]), decode_image(PHOTOS[1])
    events = [ln.on_frame(img, float(i)) for i, img in enumerate([still, still, other, other, still, still, still])]
    presences = [e for e in events if e is not None]
    assert presences[0].active is True and presences[0].kind == "motion"
    assert presences[-1].active is False and len(presences) == 2   # the vehicle came, and left


def test_sensor_that_fails_to_open_falls_back_to_motion(pins):
    ln = Lane(lane(pin="NOSUCHPIN"), MotionConfig(), lambda p: None, Clock())
    assert ln.sensor is None and ln.sensor_state(0) == "failed" and ln.mode(0) == "motion"
    assert ln.health(0)["detail"]            # says why, for `alpr-unit status`


def test_motion_detector_ignores_a_still_scene_and_sees_a_change():
    m = MotionDetector((0.0, 0.0, 1.0, 1.0), MotionConfig(quiet_frames=2))
    img = decode_image(PHOTOS[0])
    assert [m.update(img) for _ in range(5)] == [None] * 5
    assert m.update(decode_image(PHOTOS[1])) is True


# -- bursts --------------------------------------------------------------------------------------
CAM = CameraConfig(kind="replay", pre_trigger_frames=2, burst_frames=3, burst_fps=10, fps=20)


def frames(n: int, t0: float, dt: float = 0.05, seq0: int = 1):
    img = np.zeros((32, 32, 3), np.uint8)
    return [Frame(img, t0 + i * dt, seq0 + i) for i in range(n)]


def test_presence_opens_a_burst_with_the_ring_then_takes_frames_at_burst_rate():
    out = []
    a = BurstAssembler(CAM, [lane()], out.append)
    fs = frames(12, 0.0)
    for f in fs[:4]:
        a.on_frame(f)
    a.on_presence(Presence("in", True, 0.2, "loop:GPIO17", "sensor"))
    for f in fs[4:]:
        a.on_frame(f)
    assert isinstance(out[0], Open) and out[0].trigger.edge_t == 0.2 and out[0].trigger.read_id
    taken = [w.frame.seq for w in out if isinstance(w, FrameWork)]
    assert taken[:2] == [3, 4]                     # the ring: the last two frames before the edge
    assert taken[2:] == [5, 7, 9]                  # then every other frame (10 fps of a 20 fps camera)
    assert isinstance(out[-1], Close)              # full and presence long enough: closed while present
    n = len(out)
    a.on_presence(Presence("in", False, 1.0, "loop:GPIO17", "sensor"))
    assert len(out) == n                           # the vehicle leaving adds nothing


def test_absence_ends_a_burst_early_and_a_glitch_is_discarded():
    out = []
    a = BurstAssembler(CAM, [lane(min_presence_ms=100)], out.append)
    a.on_presence(Presence("in", True, 0.0, "s", "sensor"))
    for f in frames(1, 0.01):
        a.on_frame(f)
    a.on_presence(Presence("in", False, 0.03, "s", "sensor"))       # 30 ms: a glitch
    assert isinstance(out[-1], Discard) and a.glitches == 1
    a.on_presence(Presence("in", True, 0.25, "s", "sensor"))      # the ring frame is within the burst window
    for f in frames(1, 0.26, seq0=10):
        a.on_frame(f)
    a.on_presence(Presence("in", False, 0.75, "s", "sensor"))      # 500 ms, only one frame taken
    opens = [w for w in out if isinstance(w, Open)]
    assert isinstance(out[-1], Close) and out[-1].read_id == opens[1].trigger.read_id
    assert opens[1].trigger.read_id != opens[0].trigger.read_id     # a new read_id per vehicle
    second = [w.frame.seq for w in out[out.index(opens[1]):] if isinstance(w, FrameWork)]
    assert second == [1, 10]                                        # ring frame, then its own


def test_two_lanes_share_a_frame():
    out = []
    lanes = [lane(), LaneConfig(name="out", sensor=SensorConfig(kind="loop", pin=27))]
    a = BurstAssembler(CAM, lanes, out.append)
    a.on_presence(Presence("in", True, 0.0, "s", "sensor"))
    a.on_presence(Presence("out", True, 0.0, "s", "sensor"))
    for f in frames(1, 0.01):
        a.on_frame(f)
    fw = [w for w in out if isinstance(w, FrameWork)]
    assert len(fw) == 1 and len(fw[0].read_ids) == 2
