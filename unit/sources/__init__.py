"""Camera sources, chosen by name from the config as gpiozero chooses its pin factory by name.

`[camera] kind` names an entry of `KINDS`; the entry says where that kind's `SourceKind` is, and it is
imported only when a config names it. A kind has its own table, `[camera.<kind>]`, for the options
that belong to it alone (`[camera.picamera2] shutter_us`, `[camera.replay] path`); `[camera]` holds
what every kind shares (resolution, rates, bursts). `open_source(cfg)` is how the service, the
technician's tools, `record-clip` and the HIL harness get a camera.

Adding a kind (GStreamer, RTSP, V4L2, a Jetson's CSI camera) takes one module, one line and a table:
- `unit/sources/<module>.py` with an `Options` frozen dataclass whose fields are the keys of
  `[camera.<kind>]` (defaults and bounds in `unit.schema.key` metadata; a check across keys raises
  `unit.schema.BadValue` in `__post_init__`; `capture_facts()` says what a recorded clip keeps of
  them), a source with `open()`, `read(timeout)`, `close()`, `clock` and `live` that hands out
  `Frame`s checked with `check_frame`, and `KIND = SourceKind(Options, open_fn)`. Import the camera's
  own library inside `open()`, so a config naming the kind validates on any machine;
- one line in `KINDS`;
- its `[camera.<kind>]` table in `unit/example-config.toml` and docs/unit-config.md.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from unit.sources.frames import FrameSource

if TYPE_CHECKING:
    from unit.config import UnitConfig

# kind name -> "module:attribute" of its SourceKind
KINDS: dict[str, str] = {
    "picamera2": "unit.sources.picamera:KIND",
    "replay": "unit.sources.replay:KIND",
}


@dataclass(frozen=True)
class SourceKind:
    """One kind of camera: the dataclass of its `[camera.<kind>]` options, and how to make one from a
    unit config: `open(cfg, clock, realtime)`, where `clock` is None for the kind's own (the wall
    clock; for a recording, a ManualClock from now) and `realtime` paces a recording as recorded
    (live cameras always are)."""
    options: type
    open: Callable[..., FrameSource]


def kind(name: str) -> SourceKind:
    """The kind registered as `name`; ValueError naming the known ones otherwise."""
    if name not in KINDS:
        raise ValueError(f"camera kind {name!r} is not one of {', '.join(map(repr, KINDS))}")
    module, _, attr = KINDS[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def open_source(cfg: "UnitConfig", *, clock: Callable[[], float] | None = None,
                realtime: bool = True) -> FrameSource:
    """The configured camera, made but not opened: the caller opens it where a failure to open is
    handled (the service's capture loop reports it and retries). A config a kind cannot start from
    raises ConfigError naming the key."""
    return kind(cfg.camera.kind).open(cfg, clock=clock, realtime=realtime)
