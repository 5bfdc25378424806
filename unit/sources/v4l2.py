"""The `v4l2` kind: a USB (UVC) or other Video4Linux2 camera through GStreamer's v4l2src.

Its options (`[camera.v4l2]`): the `device` (a stable /dev/v4l/by-id/... name survives replugging;
/dev/video0 may not), the `pixel_format` the camera sends (`YUYV` raw, `MJPG` compressed: most UVC
cameras give their full resolution and rate only as MJPG; `H264` from cameras that encode; `GREY`
from infrared and machine-vision cameras), and `controls`, V4L2 controls set when it opens (for a plate
camera a short fixed exposure: `v4l2-ctl -d DEVICE --list-ctrls` lists what the camera has). The
resolution and frame rate are `[camera]`'s; the camera must offer them in that format
(`v4l2-ctl -d DEVICE --list-formats-ext`), or the pipeline refuses to start and says so.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from unit.schema import key
from unit.sources import SourceKind
from unit.sources.gstreamer import GstSource, decoder, fraction, quote, to_system_memory

if TYPE_CHECKING:
    from unit.config import CameraConfig, UnitConfig

FORMATS = ("YUYV", "MJPG", "H264", "GREY")


def _controls(s: Any, k: str, default: Any) -> tuple[tuple[str, int], ...]:
    v = s.value(k, {})
    if (not isinstance(v, dict) or not all(re.fullmatch(r"[a-z][a-z0-9_]*", n) for n in v)
            or not all(isinstance(x, int) and not isinstance(x, bool) for x in v.values())):
        raise s.bad(k, "a table of V4L2 control names (lower case, as v4l2-ctl --list-ctrls prints them) "
                       "and integer values, e.g. { auto_exposure = 1, exposure_time_absolute = 10 }", v)
    return tuple(sorted(v.items()))


@dataclass(frozen=True)
class Options:
    device: str = field(default="/dev/video0", metadata=key(nonempty=True))
    pixel_format: str = field(default="MJPG", metadata=key(choices=FORMATS))
    controls: tuple[tuple[str, int], ...] = field(default=(), metadata=key(read=_controls))
    decoder: str = ""          # H264 only; empty: the board's hardware decoder where it has one

    def capture_facts(self) -> dict[str, Any]:
        return {"device": self.device, "pixel_format": self.pixel_format, "controls": dict(self.controls)}


def description(opts: Options, cam: "CameraConfig") -> str:
    """The pipeline for these options at `[camera]`'s size and rate."""
    size = f"width={cam.resolution[0]},height={cam.resolution[1]},framerate={fraction(cam.fps)}"
    src = f"v4l2src device={quote(opts.device)}"
    if opts.controls:
        src += " extra-controls=" + quote("c," + ",".join(f"{n}={v}" for n, v in opts.controls))
    if opts.pixel_format == "YUYV":
        return f"{src} ! video/x-raw,format=YUY2,{size} ! videoconvert ! video/x-raw,format=RGB"
    if opts.pixel_format == "GREY":
        return f"{src} ! video/x-raw,format=GRAY8,{size}"      # grey goes to the unit as it is
    if opts.pixel_format == "MJPG":
        return f"{src} ! image/jpeg,{size} ! jpegdec ! videoconvert ! video/x-raw,format=RGB"
    dec = decoder("h264", opts.decoder)
    return f"{src} ! video/x-h264,{size} ! h264parse ! {dec} ! {to_system_memory(dec)}"


def open_v4l2(cfg: "UnitConfig", clock: Callable[[], float] | None = None, realtime: bool = True) -> GstSource:
    opts, cam = cfg.camera.options, cfg.camera
    return GstSource(lambda: description(opts, cam), what=f"v4l2 {opts.device}",
                     stall_after_s=cam.stall_after_s, clock=clock or time.time)


KIND = SourceKind(Options, open_v4l2)
