"""From presence and frames to bursts: which frames belong to which vehicle.

A pre-trigger ring keeps the last few frames, because a plate is often best seen just before the loop
fires. Presence opens a burst for its lane (the `read_id` is made here, at capture) with the ring's
frames, then takes frames at `burst_fps` until `burst_frames` or absence. A presence shorter than
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
from unit.sources.frames import Frame
from wire.read import new_read_id

log = logging.getLogger("unit.burst")


@dataclass
class Trigger:
    read_id: str
    lane: str
    sensor: str
    kind: str            # "sensor" or "motion"
    edge_t: float


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
        self.ring: collections.deque[Frame] = collections.deque(maxlen=max(cam.pre_trigger_frames, 1))
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
            ring = list(self.ring)[-self.cam.pre_trigger_frames:] if self.cam.pre_trigger_frames else []
            for f in ring:
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
        if self.cam.pre_trigger_frames:
            self.ring.append(frame)
        self.tick(frame.t)

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
