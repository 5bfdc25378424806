"""A gpiozero pin factory on the Linux GPIO character device through libgpiod 2 (`gpiod`): the lane
sensors' pins on a Jetson, or any board gpiozero does not know.

gpiozero's own factories read a Raspberry Pi's header; a Jetson's GPIO lines are on other chips at other
offsets. This factory gives the sensors (`unit.sensors.LaneSensor`, a gpiozero DigitalInputDevice)
the same inputs there, so the sensor logic, debounce and health are the Pi's, unchanged. A pin is
named by the kernel's line: an offset on `[gpio] chip` (`105`), a chip and an offset or line name
(`"gpiochip0:105"`, `"gpiochip1:PQ.05"`), or a line name alone (`"PQ.05"`, looked for on every chip);
`gpioinfo` lists them. Pulls are asked of the kernel (a Jetson's header pins may ignore them: their
pulls are set in the pinmux, so wire an external resistor). Debounce is the kernel's (uAPI v2,
Linux 5.10+); where a kernel refuses it, the pin debounces in software: a level counts once it has
held for the bounce time.

Inputs only: the unit reads sensors and drives nothing. `request` and `find_line` are the calls that
reach the hardware (`gpiod.request_lines`, a chip's line lookup); tests replace those alone.
"""
from __future__ import annotations

import glob
import logging
import os
import re
import threading
import time
from datetime import timedelta
from typing import Any, Callable
from weakref import WeakMethod, ref

from gpiozero import Factory, Pin
from gpiozero.exc import PinInvalidFunction, PinInvalidPin, PinSetInput
from gpiozero.pins import BoardInfo, HeaderInfo, PinInfo

log = logging.getLogger("unit.gpio")
CONSUMER = "alpr-unit"
POLL_S = 0.1


def find_line(name: str, chips: list[str] | None = None) -> tuple[str, int]:
    """(chip path, offset) of the GPIO line called `name` on any chip; PinInvalidPin when none has it."""
    import gpiod
    for path in chips or sorted(glob.glob("/dev/gpiochip*")):
        try:
            with gpiod.Chip(path) as chip:
                return path, chip.line_offset_from_id(name)
        except (OSError, ValueError):
            continue
    raise PinInvalidPin(f"no GPIO line named {name!r} on any chip (gpioinfo lists them)")


def _request(path: str, offset: int, settings: Any) -> Any:
    import gpiod
    return gpiod.request_lines(path, config={offset: settings}, consumer=CONSUMER)


def chip_path(chip: str) -> str:
    return chip if chip.startswith("/") else f"/dev/{chip}"


class GpiodFactory(Factory):
    """gpiozero pins on libgpiod lines; see the module text. `chip` is where bare offsets are."""

    def __init__(self, chip: str = "gpiochip0", *, request: Callable[[str, int, Any], Any] = _request,
                 find_line: Callable[[str], tuple[str, int]] = find_line):
        super().__init__()
        self.chip = chip_path(chip)
        self.request, self.find_line = request, find_line
        self.pins: dict[tuple[str, int], GpiodPin] = {}
        self._header = HeaderInfo(name="GPIOD", rows=0, columns=0, pins={})
        self._board = BoardInfo(revision="", model="Linux GPIO character device", pcb_revision="", released="",
                                soc="", manufacturer="", memory=0, storage="", usb=0, usb3=0, ethernet=0,
                                eth_speed=0, wifi=False, bluetooth=False, csi=0, dsi=0,
                                headers={"GPIOD": self._header}, board="")

    def resolve(self, spec: int | str) -> tuple[str, int]:
        """(chip path, offset) of a pin name; PinInvalidPin saying what names work."""
        if isinstance(spec, int) and not isinstance(spec, bool):
            return self.chip, spec
        if not isinstance(spec, str) or not spec.strip():
            raise PinInvalidPin(f"{spec!r} is not a GPIO line")
        spec = spec.strip()
        if spec.isdigit():
            return self.chip, int(spec)
        if re.fullmatch(r"(GPIO|BCM|BOARD|WPI|J8:)\d+", spec, re.IGNORECASE):
            raise PinInvalidPin(f"{spec!r} is a Raspberry Pi pin name; with the gpiod backend give the kernel's "
                                "line: an offset on [gpio] chip, 'gpiochipN:OFFSET' or a line name (gpioinfo)")
        chip, sep, line = spec.rpartition(":")
        if sep and chip:
            path = chip_path(chip)
            if line.isdigit():
                return path, int(line)
            return self.find_line_on(line, path)
        return self.find_line(spec)

    def find_line_on(self, name: str, path: str) -> tuple[str, int]:
        found = self.find_line(name)
        if found[0] != path:
            raise PinInvalidPin(f"GPIO line {name!r} is on {found[0]}, not {path}")
        return found

    def _info(self, spec: int | str) -> PinInfo:
        path, offset = self.resolve(spec)
        name = f"{os.path.basename(path)}:{offset}"
        for info in self._header.pins.values():
            if info.name == name:
                return info
        info = PinInfo(number=len(self._header.pins) + 1, name=name, names=frozenset({name}), pull="",
                       row=0, col=0, interfaces=frozenset({"gpio"}))
        self._header.pins[info.number] = info
        return info

    def reserve_pins(self, requester: Any, *names: Any) -> None:
        # by the line's own name, so the same line under another name is refused as in use
        super().reserve_pins(requester, *(self._info(n).name for n in names))

    def release_pins(self, reserver: Any, *names: Any) -> None:
        super().release_pins(reserver, *(self._info(n).name for n in names))

    def pin(self, spec: int | str) -> "GpiodPin":
        info = self._info(spec)
        path, offset = self.resolve(spec)
        key = (path, offset)
        if key not in self.pins or self.pins[key].closed:      # a closed pin is requested afresh
            self.pins[key] = GpiodPin(self, info, path, offset)
        return self.pins[key]

    def close(self) -> None:
        for pin in list(self.pins.values()):
            pin.close()
        self.pins.clear()

    def _get_board_info(self) -> BoardInfo:
        return self._board

    @staticmethod
    def ticks() -> float:
        return time.monotonic()

    @staticmethod
    def ticks_diff(later: float, earlier: float) -> float:
        return later - earlier


class GpiodPin(Pin):
    """One input line. Settings changes re-request it; edges are read by a thread of its own and
    reported through gpiozero's `when_changed`."""

    def __init__(self, factory: GpiodFactory, info: PinInfo, path: str, offset: int):
        super().__init__()
        self._factory, self._info, self.path, self.offset = factory, info, path, offset
        self._pull = "floating"
        self._bounce: float | None = None
        self._edges = "both"
        self._soft_bounce = False         # the kernel refused debounce: done here
        self._when_changed: Any = None
        self._lock = threading.RLock()
        self._req: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._reported: int | None = None
        self._request()

    def __repr__(self) -> str:
        return self._info.name

    @property
    def info(self) -> PinInfo:
        return self._info

    @property
    def closed(self) -> bool:
        return self._req is None

    @property
    def factory(self) -> GpiodFactory:
        return self._factory

    # -- the line's settings -----------------------------------------------------------------------------
    def _settings(self, debounce: bool) -> Any:
        from gpiod import LineSettings
        from gpiod.line import Bias, Direction, Edge
        return LineSettings(
            direction=Direction.INPUT,
            bias={"up": Bias.PULL_UP, "down": Bias.PULL_DOWN, "floating": Bias.DISABLED}[self._pull],
            edge_detection={"both": Edge.BOTH, "rising": Edge.RISING, "falling": Edge.FALLING,
                            "none": Edge.NONE}[self._edges],
            debounce_period=timedelta(seconds=self._bounce or 0) if debounce else timedelta())

    def _request(self) -> None:
        """(Re)request the line with the current settings; debounce in software if the kernel refuses it."""
        with self._lock:
            if self._req is not None:
                self._req.release()
                self._req = None
            want = bool(self._bounce)
            try:
                self._req = self._factory.request(self.path, self.offset, self._settings(debounce=want))
                self._soft_bounce = False
            except OSError as exc:
                if not want:
                    raise
                log.warning("%s: the kernel refused a %.0f ms debounce (%s); debouncing in software",
                            self, self._bounce * 1000, exc)
                self._req = self._factory.request(self.path, self.offset, self._settings(debounce=False))
                self._soft_bounce = True

    def _get_function(self) -> str:
        return "input"

    def _set_function(self, value: str) -> None:
        if value != "input":
            raise PinInvalidFunction(f"{self} is an input: the gpiod backend reads sensors and drives nothing")

    def _get_state(self) -> int:
        from gpiod.line import Value
        with self._lock:
            return int(self._req.get_value(self.offset) == Value.ACTIVE)

    def _set_state(self, value: Any) -> None:
        raise PinSetInput(f"cannot set the state of input {self}")

    def _get_pull(self) -> str:
        return self._pull

    def _set_pull(self, value: str) -> None:
        if value not in ("up", "down", "floating"):
            raise PinInvalidFunction(f"invalid pull {value!r} for {self}")
        self._pull = value
        self._request()

    def _get_bounce(self) -> float | None:
        return self._bounce

    def _set_bounce(self, value: float | None) -> None:
        self._bounce = None if not value else float(value)
        self._request()

    def _get_edges(self) -> str:
        return self._edges

    def _set_edges(self, value: str) -> None:
        self._edges = value
        self._request()

    # -- edges ---------------------------------------------------------------------------------------------
    def _get_when_changed(self) -> Any:
        return None if self._when_changed is None else self._when_changed()

    def _set_when_changed(self, value: Any) -> None:
        if value is None:
            self._when_changed = None
            self._stop_thread()
            return
        from types import MethodType
        self._when_changed = WeakMethod(value) if isinstance(value, MethodType) else ref(value)
        if self._thread is None:
            self._reported = self._get_state()
            self._stop.clear()
            self._thread = threading.Thread(target=self._watch, name=f"gpio-{self}", daemon=True)
            self._thread.start()

    def _watch(self) -> None:
        """Read edge events and report them; with software debounce, a level is reported once it has
        held for the bounce time."""
        from gpiod import EdgeEvent
        pending: tuple[int, float] | None = None        # (level, ticks) not yet held long enough
        while not self._stop.is_set():
            wait = POLL_S
            if pending is not None and self._bounce:
                wait = max(0.0, min(POLL_S, pending[1] + self._bounce - time.monotonic()))
            try:
                with self._lock:
                    req = self._req
                ready = req is not None and req.wait_edge_events(timedelta(seconds=wait))
                events = req.read_edge_events() if ready else []
            except (OSError, ValueError) as exc:        # released under us (closing, re-requesting)
                if self._stop.wait(POLL_S):
                    return
                log.debug("%s: edge read failed: %s", self, exc)
                continue
            for ev in events:
                level = int(ev.event_type == EdgeEvent.Type.RISING_EDGE)
                ticks = ev.timestamp_ns / 1e9
                if self._soft_bounce:
                    pending = (level, ticks)
                else:
                    self._report(ticks, level)
            if pending is not None and time.monotonic() - pending[1] >= (self._bounce or 0):
                if pending[0] != self._reported:
                    self._report(pending[1], pending[0])
                pending = None

    def _report(self, ticks: float, level: int) -> None:
        self._reported = level
        method = self._get_when_changed()
        if method is not None:
            method(ticks, level)

    def _stop_thread(self) -> None:
        t, self._thread = self._thread, None
        if t is not None:
            self._stop.set()
            if t is not threading.current_thread():
                t.join(2)

    def close(self) -> None:
        self._when_changed = None
        self._stop_thread()
        with self._lock:
            if self._req is not None:
                try:
                    self._req.release()
                finally:
                    self._req = None
