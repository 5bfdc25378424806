"""A recorded clip (the `unit.clips` format) as a replay timeline.

Each frame comes at its time and each sensor edge at its own; an edge that shares an instant with a
frame comes first (the sensor saw the vehicle before the frame arrived).
"""
from __future__ import annotations

from pathlib import Path

from unit import clips
from unit.sources.frames import ReplayEvent


def schedule(clip: clips.Clip) -> list[ReplayEvent]:
    events = [ReplayEvent(f.t, path=clip.path / f.file) for f in clip.frames]
    events += [ReplayEvent(e.t, edge=(e.lane, e.active)) for e in clip.edges]
    events.sort(key=lambda e: (e.t, e.edge is None))
    return events


def load(folder: str | Path) -> tuple[clips.Clip, list[ReplayEvent]]:
    """The clip in `folder` and its timeline; a clip that cannot be used raises ClipError (a ValueError)."""
    clip = clips.load(folder)
    return clip, schedule(clip)
