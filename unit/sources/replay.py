"""The `replay` kind: a recording played back as the camera, anywhere (development, tests, the HIL harness).

Its option (`[camera.replay] path`) is a clip folder (`clip.json`, replayed by `unit.sources.clip`) or
a folder of stills, each still one vehicle passing the lane with a sensor. Times come from the
recording, offset to `start`, and are pushed into a `ManualClock` as each event is handed out, so
everything downstream sees recorded time; `realtime` paces the events on the wall clock as recorded.
Recorded sensor edges come out as `Edge`s, for the caller to drive onto the lanes' (mock) pins.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from unit.schema import ConfigError, key
from unit.sources import SourceKind
from unit.sources import clip as clip_timeline
from unit.sources.frames import Edge, Frame, ManualClock, ReplayEvent, SourceEnded, decode_image

if TYPE_CHECKING:
    from unit.clips import Clip
    from unit.config import CameraConfig, LaneConfig, UnitConfig

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


@dataclass(frozen=True)
class Options:
    path: str = field(default="", metadata=key(path=True))     # a clip folder or a folder of stills

    def capture_facts(self) -> dict[str, Any]:
        """A clip recorded from a replay keeps no camera settings: there were none."""
        return {}


def stills_lane(lanes: Sequence["LaneConfig"]) -> str:
    """The lane a folder of stills is replayed on: the first with a sensor (its edges open the
    bursts), else the first."""
    return next((lane.name for lane in lanes if lane.has_sensor), lanes[0].name)


def stills_schedule(paths: list[Path], lane: str, cam: "CameraConfig", gap_s: float = 3.0) -> list[ReplayEvent]:
    """Each still is one vehicle passing `lane`: a few frames before the sensor edge (they fill the
    pre-trigger ring), the edge, a burst's worth of frames at burst rate, the falling edge, then a gap."""
    events: list[ReplayEvent] = []
    t = 0.0
    pre_dt, burst_dt = 1.0 / cam.fps, 1.0 / cam.burst_fps
    for p in paths:
        for _ in range(cam.pre_trigger_frames):
            events.append(ReplayEvent(t, path=p))
            t += pre_dt
        events.append(ReplayEvent(t, edge=(lane, True)))
        for i in range(cam.burst_frames):
            events.append(ReplayEvent(t + i * burst_dt + 1e-3, path=p))
        t += cam.burst_frames * burst_dt + 1e-3
        events.append(ReplayEvent(t, edge=(lane, False)))
        t += gap_s
    return events


def list_stills(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


class ReplaySource:
    """Replays a clip folder or a folder of stills; `clip` is the clip (None for stills). A still
    decoded once is reused for all its frames."""

    def __init__(self, source: str | Path, cam: "CameraConfig", lane: str, clock: ManualClock | None = None,
                 start: float | None = None, realtime: bool = False, gap_s: float = 3.0):
        self.path = Path(source)
        if not self.path.is_dir():
            raise ValueError(f"{self.path}: replay source must be a clip folder or a folder of stills")
        self.clip: Clip | None = None
        if (self.path / "clip.json").exists():
            self.clip, self._events = clip_timeline.load(self.path)
        else:
            stills = list_stills(self.path)
            if not stills:
                raise ValueError(f"{self.path}: no images ({', '.join(IMAGE_SUFFIXES)}) and no clip.json")
            self._events = stills_schedule(stills, lane, cam, gap_s)
        self.clock = clock or ManualClock()
        self.start = self.clock() if start is None else start
        self.realtime = realtime
        self._i = 0
        self._seq = 0
        self._cache: tuple[Path, np.ndarray] | None = None
        self._wall0: float | None = None

    @property
    def live(self) -> bool:
        """Paced as recorded, a replay is as impatient as a camera; otherwise it waits for its reader."""
        return self.realtime

    def __len__(self) -> int:
        return len(self._events)

    @property
    def frames(self) -> int:
        return sum(1 for e in self._events if e.path is not None)

    def open(self) -> None:
        self._wall0 = time.monotonic()

    def close(self) -> None:
        self._cache = None

    def read(self, timeout: float = 0.0) -> Frame | Edge | None:
        if self._i >= len(self._events):
            raise SourceEnded()
        ev = self._events[self._i]
        self._i += 1
        if self.realtime and self._wall0 is not None:
            delay = self._wall0 + ev.t - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        t = self.start + ev.t
        self.clock.set(t)
        if ev.edge is not None:
            return Edge(lane=ev.edge[0], active=ev.edge[1], t=t)
        assert ev.path is not None
        if self._cache is None or self._cache[0] != ev.path:
            self._cache = None
            image = decode_image(ev.path)        # BadFrame propagates: the loop logs and skips it
            self._cache = (ev.path, image)
        self._seq += 1
        return Frame(self._cache[1], t, self._seq)


def open_replay(cfg: "UnitConfig", clock: Callable[[], float] | None = None, realtime: bool = True) -> ReplaySource:
    if not cfg.camera.options.path:
        raise ConfigError("camera.replay.path: expected a clip or stills folder when camera.kind = 'replay'")
    if clock is not None and not isinstance(clock, ManualClock):
        raise TypeError("a replay camera needs a ManualClock: times follow the recording")
    return ReplaySource(cfg.camera.options.path, cfg.camera, stills_lane(cfg.lanes),
                        clock=clock or ManualClock(time.time()), realtime=realtime)


KIND = SourceKind(Options, open_replay)
