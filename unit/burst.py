"""From presence and frames to bursts: which frames belong to which vehicle.

A pre-trigger ring keeps the last few frames, because a plate is often best seen just before the loop
fires. Presence opens a burst for its lane (the `read_id` is made here, at capture) with the ring's
recent frames - never one older than the burst window (`CameraConfig.burst_window_s`), and none from
before a gap in the camera's frames (`Gap`: the camera was reopened) - then takes frames at
`burst_fps` until `burst_frames` or absence. A camera that stopped delivering frames thus gives a later
vehicle no frames, hence no read, rather than an earlier vehicle's. A presence shorter than
`min_presence_ms` is a glitch: its burst is discarded. Frames are handed on one by one as they come
(`FrameWork`), so recognition runs while the vehicle is still passing and little is held in memory.
"""
from __future__ import annotations

import collections
import logging
from dataclasses import dataclass
from typing import Callable, Union

from unit.config import CameraConfig, LaneConfig
from unit.sensors import Presence
from unit.sources.frames import Frame, Gap
from wire.read import new_read_id

log = logging.getLogger("unit.burst")


@dataclass
class Trigger:
    read_id: str
    lane: str
    sensor: str
    kind: str            # "sensor" or "motion"
    edge_t: float


class PreTriggerRing:
    """The last `size` frames, for a burst to begin with what the camera saw just before the trigger.

    `recent(now, max_age)` gives only frames taken at most `max_age` seconds before `now`, so a camera
    that stopped delivering never lends a later vehicle an earlier one's frames; `clear()` forgets all
    (a gap in the camera's frames). Used by one thread (the trigger loop)."""

    def __init__(self, size: int):
        self.size = max(0, int(size))
        self._frames: collections.deque[Frame] = collections.deque(maxlen=max(self.size, 1))

    def push(self, frame: Frame) -> None:
        if self.size:
            self._frames.append(frame)

    def recent(self, now: float, max_age: float) -> list[Frame]:
        """The frames no older than `max_age` at `now`, oldest first (at most `size`)."""
        if not self.size:
            return []
        return [f for f in self._frames if f.t >= now - max_age][-self.size:]

    def clear(self) -> None:
        self._frames.clear()

    def __len__(self) -> int:
        return len(self._frames)


@dataclass
class Open:
    trigger: Trigger


@dataclass
class FrameWork:
    frame: Frame
    read_ids: list[str]


@dataclass
class Close:
    read_id: str
    t: float


@dataclass
class Discard:
    read_id: str
    reason: str


Work = Union[Open, FrameWork, Close, Discard]


@dataclass
class _Burst:
    trigger: Trigger
    taken: int = 0
    last_t: float | None = None
    full: bool = False


class BurstAssembler:
    """Single-threaded: feed it presence and frames in the order they happened; it emits Work."""

    def __init__(self, cam: CameraConfig, lanes: list[LaneConfig], emit: Callable[[Work], None]):
        self.cam = cam
        self.lanes = {lane.name: lane for lane in lanes}
        self.emit = emit
        self.ring = PreTriggerRing(cam.pre_trigger_frames)
        self.open: dict[str, _Burst] = {}       # lane -> burst being filled
        self.present: dict[str, bool] = {}      # lane -> vehicle present (burst may already be closed)
        self.glitches = 0

    def _min_presence(self, lane: str) -> float:
        return self.lanes[lane].sensor.min_presence_ms / 1000.0

    def on_presence(self, p: Presence) -> None:
        if p.lane not in self.lanes:
            log.warning("presence for unknown lane %r ignored", p.lane)
            return
        was = self.present.get(p.lane, False)
        self.present[p.lane] = p.active
        if p.active and not was:
            burst = _Burst(Trigger(new_read_id(), p.lane, p.sensor, p.kind, p.t))
            self.open[p.lane] = burst
            self.emit(Open(burst.trigger))
            for f in self.ring.recent(p.t, self.cam.burst_window_s):
                self.emit(FrameWork(f, [burst.trigger.read_id]))
        elif not p.active and was:
            burst = self.open.pop(p.lane, None)
            if burst is None:
                return      # its burst was already closed full; the vehicle has now left
            if p.t - burst.trigger.edge_t < self._min_presence(p.lane):
                self.glitches += 1
                self.emit(Discard(burst.trigger.read_id, f"presence {1000 * (p.t - burst.trigger.edge_t):.0f} ms "
                                                         f"< min {self.lanes[p.lane].sensor.min_presence_ms:.0f} ms"))
            else:
                self.emit(Close(burst.trigger.read_id, p.t))

    def on_frame(self, frame: Frame) -> None:
        takers: list[str] = []
        min_dt = 0.999 / self.cam.burst_fps
        for burst in self.open.values():
            if burst.full:
                continue
            if burst.last_t is None or frame.t - burst.last_t >= min_dt:
                burst.taken += 1
                burst.last_t = frame.t
                takers.append(burst.trigger.read_id)
                burst.full = burst.taken >= self.cam.burst_frames
        if takers:
            self.emit(FrameWork(frame, takers))
        self.ring.push(frame)
        self.tick(frame.t)

    def on_gap(self, gap: Gap) -> None:
        """The camera's frames broke off: what the ring holds is from before, and is forgotten."""
        self.ring.clear()

    def tick(self, now: float) -> None:
        """Close full bursts once their presence has lasted long enough not to be a glitch."""
        for lane, burst in list(self.open.items()):
            if burst.full and now - burst.trigger.edge_t >= self._min_presence(lane):
                del self.open[lane]
                self.emit(Close(burst.trigger.read_id, now))

    def close_all(self, now: float) -> None:
        """Shutting down: finish what was seen rather than lose it."""
        for lane, burst in list(self.open.items()):
            del self.open[lane]
            self.emit(Close(burst.trigger.read_id, now))
