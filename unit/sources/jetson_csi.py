"""The `jetson-csi` kind: a MIPI CSI camera on a Jetson, through NVIDIA's Argus camera stack.

nvarguscamerasrc captures into NVIDIA's own memory with the ISP's debayering, and nvvidconv brings
the frames into system memory as RGBA in hardware; the CPU never converts a pixel. Its options
(`[camera.jetson-csi]`): the `sensor_id` (the CSI port, 0 or 1 on a developer kit), a `sensor_mode`
(-1: Argus picks the mode for `[camera]`'s resolution and rate), the exposure range in microseconds
(a short fixed exposure freezes a moving vehicle: give min = max), the analogue gain range (noise at
night), the ISP's digital gain cap (1: none, it only amplifies noise) and `flip_method` for a camera
mounted upside down (nvvidconv: 0 none, 2 rotate 180, 4 flip horizontally, 6 flip vertically).
Only a Jetson with JetPack has these elements; elsewhere opening refuses and says so.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from unit.schema import BadValue, key
from unit.sources import SourceKind
from unit.sources.gstreamer import GstSource, fraction

if TYPE_CHECKING:
    from unit.config import CameraConfig, UnitConfig


@dataclass(frozen=True)
class Options:
    sensor_id: int = field(default=0, metadata=key(0, 7))
    sensor_mode: int = field(default=-1, metadata=key(-1, 31))                  # -1: chosen by Argus
    exposure_us_min: int = field(default=100, metadata=key(1, 1_000_000))
    exposure_us_max: int = field(default=1000, metadata=key(1, 1_000_000))      # 1/1000 s freezes a vehicle
    gain_min: float = field(default=1.0, metadata=key(1.0, 64.0))
    gain_max: float = field(default=8.0, metadata=key(1.0, 64.0))
    isp_digital_gain_max: float = field(default=1.0, metadata=key(1.0, 256.0))
    flip_method: int = field(default=0, metadata=key(0, 7))

    def __post_init__(self) -> None:
        if self.exposure_us_max < self.exposure_us_min:
            raise BadValue("exposure_us_max", f"a number >= exposure_us_min ({self.exposure_us_min})",
                           self.exposure_us_max)
        if self.gain_max < self.gain_min:
            raise BadValue("gain_max", f"a number >= gain_min ({self.gain_min})", self.gain_max)

    def capture_facts(self) -> dict[str, Any]:
        return {"sensor_id": self.sensor_id, "exposure_us": [self.exposure_us_min, self.exposure_us_max],
                "gain": [self.gain_min, self.gain_max], "isp_digital_gain_max": self.isp_digital_gain_max}


def description(opts: Options, cam: "CameraConfig") -> str:
    """The pipeline for these options at `[camera]`'s size and rate (Argus takes nanoseconds)."""
    return (f"nvarguscamerasrc sensor-id={opts.sensor_id} sensor-mode={opts.sensor_mode} "
            f'exposuretimerange="{opts.exposure_us_min * 1000} {opts.exposure_us_max * 1000}" '
            f'gainrange="{opts.gain_min:g} {opts.gain_max:g}" '
            f'ispdigitalgainrange="1 {opts.isp_digital_gain_max:g}" '
            f"! video/x-raw(memory:NVMM),width={cam.resolution[0]},height={cam.resolution[1]},"
            f"framerate={fraction(cam.fps)},format=NV12 "
            f"! nvvidconv flip-method={opts.flip_method} ! video/x-raw,format=RGBA")


def open_jetson_csi(cfg: "UnitConfig", clock: Callable[[], float] | None = None, realtime: bool = True) -> GstSource:
    opts, cam = cfg.camera.options, cfg.camera
    return GstSource(lambda: description(opts, cam), what=f"jetson-csi sensor {opts.sensor_id}",
                     stall_after_s=cam.stall_after_s, clock=clock or time.time)


KIND = SourceKind(Options, open_jetson_csi)
