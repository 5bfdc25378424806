"""Vehicle presence per lane: a GPIO sensor through gpiozero, with motion on the lane's ROI as fallback.

A loop detector, IR break-beam or radar contact gives presence (start of a burst) and absence (its end).
The sensor is judged by what it does: active for longer than `stuck_after_s` is *stuck*; silent while
the camera sees `silent_after_motions` motion episodes in the lane is *silent*. A lane whose sensor is
missing, failed to open, stuck or silent is triggered by motion until its sensor behaves again.
"""
from __future__ import annotations

import logging
import threading
import time
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np

from unit.config import LaneConfig, MotionConfig

log = logging.getLogger("unit.sensors")

OK, STUCK, SILENT, FAILED, NONE = "ok", "stuck", "silent", "failed", "none"


@dataclass
class Presence:
    """A vehicle arrived (active) or left (inactive) a lane, at clock time t."""
    lane: str
    active: bool
    t: float
    sensor: str          # "loop:GPIO17", "motion:lane1", ...
    kind: str            # "sensor" or "motion"


class NoGPIO(RuntimeError):
    """No pin library can open this machine's GPIO (not a Pi, or none of gpiozero's libraries installed)."""


_no_gpio: str | None = None      # why there is no GPIO here, once found out (asked once per process)


def ensure_pins() -> None:
    """Make sure gpiozero has a pin factory: the one a caller set (MockFactory in replay and tests), or
    gpiozero's default for this machine. Without GPIO, gpiozero warns once for each pin library it tries;
    those four warnings are kept back and one line says what it means, once: NoGPIO for every lane."""
    global _no_gpio
    from gpiozero import Device
    from gpiozero.exc import BadPinFactory, PinFactoryFallback
    if Device.pin_factory is not None:
        return
    if _no_gpio is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PinFactoryFallback)
            try:
                Device.ensure_pin_factory()
                return
            except BadPinFactory:
                _no_gpio = ("no GPIO on this machine (none of gpiozero's pin libraries can open it: lgpio, "
                            "RPi.GPIO, pigpio or /dev/gpiomem)")
        log.warning("%s: lanes with a sensor are triggered by motion", _no_gpio,
                    extra={"fields": {"event": "no_gpio"}})
    raise NoGPIO(_no_gpio)


class LaneSensor:
    """One gpiozero input for one lane; edges are stamped with the unit clock and handed to `emit`."""

    def __init__(self, lane: LaneConfig, emit: Callable[[Presence], None], clock: Callable[[], float] = time.time):
        from gpiozero import DigitalInputDevice   # the pin factory is chosen by the caller (Pi or MockFactory)
        ensure_pins()

        s = lane.sensor
        self.lane, self.cfg, self.emit, self.clock = lane.name, s, emit, clock
        bounce = s.debounce_ms / 1000.0 or None
        if s.pull_up is None or (not s.pull_up) == s.active_high:
            # gpiozero derives the active state from the pull when there is one
            self.device = DigitalInputDevice(s.pin, pull_up=s.pull_up, bounce_time=bounce,
                                             active_state=s.active_high if s.pull_up is None else None)
        else:
            # an unusual pairing (pull-up yet active high): set the pull on the pin ourselves
            self.device = DigitalInputDevice(s.pin, pull_up=None, active_state=s.active_high, bounce_time=bounce)
            self.device.pin.pull = "up" if s.pull_up else "down"
        self.name = f"{s.kind}:{self.device.pin}"
        self._lock = threading.Lock()
        self.active = bool(self.device.is_active)
        now = clock()
        self.active_since: float | None = now if self.active else None
        self.edges = 0
        self.motions_since_edge = 0
        self.device.when_activated = self._on_active
        self.device.when_deactivated = self._on_inactive

    def _edge(self, active: bool) -> None:
        t = self.clock()
        with self._lock:
            if active == self.active:
                return
            self.active = active
            self.active_since = t if active else None
            self.edges += 1
            self.motions_since_edge = 0
        self.emit(Presence(self.lane, active, t, self.name, "sensor"))

    def _on_active(self) -> None:
        self._edge(True)

    def _on_inactive(self) -> None:
        self._edge(False)

    def drive(self, active: bool) -> None:
        """Replay: set the (mock) pin to the level that means `active` for this sensor's wiring."""
        high = active == self.cfg.active_high
        pin = self.device.pin
        pin.drive_high() if high else pin.drive_low()

    def note_motion(self) -> None:
        """The camera saw a motion episode in this lane (used to tell a silent sensor)."""
        with self._lock:
            self.motions_since_edge += 1

    def state(self, now: float) -> str:
        with self._lock:
            if self.active and self.active_since is not None and now - self.active_since > self.cfg.stuck_after_s:
                return STUCK
            if self.motions_since_edge >= self.cfg.silent_after_motions:
                return SILENT
            return OK

    def close(self) -> None:
        try:
            self.device.close()
        except Exception:   # closing a pin must never take the service down
            pass


class MotionDetector:
    """Motion in a region of interest from a coarse grey sample against a slowly adapting background.

    Cheap enough for every frame on a Pi: the ROI is sampled with a stride (no resize, no copy of the
    full frame), so 1080p costs about the same as a 64-pixel-wide thumbnail.
    """

    def __init__(self, roi: tuple[float, float, float, float], cfg: MotionConfig, alpha: float = 0.05):
        self.roi, self.cfg, self.alpha = roi, cfg, alpha
        self.bg: np.ndarray | None = None
        self.moving = False
        self.quiet = 0

    def _sample(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        x0, y0, x1, y1 = (int(self.roi[0] * w), int(self.roi[1] * h), int(self.roi[2] * w), int(self.roi[3] * h))
        step = max(1, (x1 - x0) // self.cfg.sample_px)
        patch = image[y0:max(y1, y0 + 1):step, x0:max(x1, x0 + 1):step]
        return patch.mean(axis=2, dtype=np.float32)

    def update(self, image: np.ndarray) -> bool | None:
        """Feed a frame; True when motion starts, False when it ends, None otherwise."""
        grey = self._sample(image)
        if self.bg is None or self.bg.shape != grey.shape:
            self.bg = grey
            return None
        moved = float(np.mean(np.abs(grey - self.bg) > self.cfg.threshold))
        self.bg += self.alpha * (grey - self.bg)
        if moved >= self.cfg.min_fraction:
            self.quiet = 0
            if not self.moving:
                self.moving = True
                return True
        elif self.moving:
            self.quiet += 1
            if self.quiet >= self.cfg.quiet_frames:
                self.moving, self.quiet = False, 0
                return False
        return None


class Lane:
    """A lane's trigger: its sensor when that works, motion on its ROI when it does not."""

    def __init__(self, cfg: LaneConfig, motion: MotionConfig, emit: Callable[[Presence], None],
                 clock: Callable[[], float] = time.time):
        self.cfg, self.emit, self.clock = cfg, emit, clock
        self.motion = MotionDetector(cfg.roi, motion)
        self.sensor: LaneSensor | None = None
        self.failure = ""
        if cfg.has_sensor:
            try:
                self.sensor = LaneSensor(cfg, emit, clock)
            except NoGPIO as exc:      # said once for all lanes (ensure_pins)
                self.failure = str(exc)
            except Exception as exc:   # pin busy, bad pin name: fall back, say so
                self.failure = f"{type(exc).__name__}: {exc}"
                log.error("lane %s: sensor on pin %s failed to open, using motion instead: %s",
                          cfg.name, cfg.sensor.pin, self.failure,
                          extra={"fields": {"lane": cfg.name, "event": "sensor_failed"}})
        self._mode = self.mode(clock())

    def sensor_state(self, now: float) -> str:
        if not self.cfg.has_sensor:
            return NONE
        if self.sensor is None:
            return FAILED
        return self.sensor.state(now)

    def mode(self, now: float) -> str:
        return "sensor" if self.sensor_state(now) == OK else "motion"

    def set_motion(self, cfg: MotionConfig) -> None:
        self.motion.cfg = cfg

    def on_frame(self, image: np.ndarray, t: float) -> Presence | None:
        """Run motion on the frame. In motion mode a change is returned as presence (the caller feeds it
        in before the frame itself, so the frame that showed the motion opens the burst); in sensor mode
        motion only watches the sensor."""
        change = self.motion.update(image)
        mode = self.mode(t)
        if mode != self._mode:
            log.warning("lane %s: trigger now %s (sensor %s)", self.cfg.name, mode, self.sensor_state(t),
                        extra={"fields": {"lane": self.cfg.name, "event": "trigger_mode", "mode": mode}})
            self._mode = mode
        if change is None:
            return None
        if mode == "sensor":
            if change and self.sensor is not None:
                self.sensor.note_motion()
            return None
        return Presence(self.cfg.name, change, t, f"motion:{self.cfg.name}", "motion")

    def health(self, now: float) -> dict:
        st = self.sensor_state(now)
        out = {"sensor": self.cfg.sensor.kind, "state": st, "mode": self.mode(now)}
        if self.sensor is not None:
            out.update(pin=str(self.sensor.device.pin), active=self.sensor.active, edges=self.sensor.edges)
        if self.failure:
            out["detail"] = self.failure
        return out

    def close(self) -> None:
        if self.sensor is not None:
            self.sensor.close()
