"""The `picamera2` kind: the Raspberry Pi camera through picamera2, set for moving vehicles.

Its options (`[camera.picamera2]`): a fixed short exposure (freezes motion), analogue gain kept
within [gain_min, gain_max] (noise at night), and a fixed focus at `lens_position` for a camera with a
focus motor. picamera2 is imported only when the camera opens: it exists on a Pi alone.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from unit.schema import BadValue, key
from unit.sources import SourceKind
from unit.sources.frames import Frame, check_frame

if TYPE_CHECKING:
    from unit.config import CameraConfig, UnitConfig


@dataclass(frozen=True)
class Options:
    shutter_us: int = field(default=1000, metadata=key(10, 1_000_000))     # short exposure freezes a vehicle
    gain_min: float = field(default=1.0, metadata=key(1.0, 64.0))
    gain_max: float = field(default=8.0, metadata=key(1.0, 64.0))           # caps noise at night
    lens_position: float | None = field(default=None, metadata=key(0.0, 32.0))   # dioptres; None: fixed-focus lens

    def __post_init__(self) -> None:
        if self.gain_max < self.gain_min:
            raise BadValue("gain_max", f"a number >= gain_min ({self.gain_min})", self.gain_max)

    def capture_facts(self) -> dict[str, Any]:
        """What a recorded clip keeps of these settings (clip.json `capture`)."""
        return {"shutter_us": self.shutter_us, "gain": [self.gain_min, self.gain_max],
                "lens_position": self.lens_position}


class PiCameraSource:
    """The Pi camera: exposure, gain and focus from `opts`, size and rate from `[camera]`."""
    live = True

    def __init__(self, cam: "CameraConfig", opts: Options, clock: Callable[[], float] = time.time):
        self.cam, self.opts = cam, opts
        self.clock = clock
        self._picam: Any = None
        self._seq = 0

    def open(self) -> None:
        from picamera2 import Picamera2          # only here: it exists on a Pi alone

        picam = Picamera2()
        frame_us = int(1e6 / self.cam.fps)
        controls: dict[str, object] = {
            "ExposureTime": int(self.opts.shutter_us),
            "FrameDurationLimits": (frame_us, frame_us),
            "AnalogueGain": float(self.opts.gain_min),
        }
        if self.opts.lens_position is not None:
            controls.update({"AfMode": 0, "LensPosition": float(self.opts.lens_position)})   # 0 = manual
        # "BGR888" in libcamera's naming is R, G, B byte order in memory, which is the RGB array we want.
        config = picam.create_video_configuration(main={"size": tuple(self.cam.resolution), "format": "BGR888"},
                                                  controls=controls, buffer_count=4)
        picam.configure(config)
        picam.start()
        self._picam = picam

    def read(self, timeout: float) -> Frame | None:
        if self._picam is None:
            self.open()
        job = self._picam.capture_request(wait=False)
        try:
            request = self._picam.wait(job, timeout=timeout)
        except TimeoutError:
            return None
        try:
            image = request.make_array("main")
            self._clamp_gain(request.get_metadata())
        finally:
            request.release()
        self._seq += 1
        return Frame(check_frame(image), self.clock(), self._seq)

    def _clamp_gain(self, meta: dict) -> None:
        """Auto gain above the limit makes noise that the OCR cannot read through: pin it at the cap."""
        if meta.get("AnalogueGain", 0.0) > self.opts.gain_max:
            self._picam.set_controls({"AnalogueGain": float(self.opts.gain_max)})

    def close(self) -> None:
        if self._picam is not None:
            try:
                self._picam.stop()
                self._picam.close()
            finally:
                self._picam = None


def open_picamera(cfg: "UnitConfig", clock: Callable[[], float] | None = None,
                  realtime: bool = True) -> PiCameraSource:
    return PiCameraSource(cfg.camera, cfg.camera.options, clock or time.time)


KIND = SourceKind(Options, open_picamera)
