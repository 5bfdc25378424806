"""Which GPIO library the lane sensors use: `[gpio] backend`.

`auto` (the default) takes gpiozero's own choice on a Raspberry Pi (lgpio on Raspberry Pi OS) and
libgpiod on a Jetson (`unit.gpiod_pins`: the kernel's GPIO lines, named as `gpioinfo` names them);
`gpiozero` and `gpiod` force one; `mock` is gpiozero's MockFactory (a bench without sensors, tests).
Whatever the backend, the sensors are the same gpiozero input devices (`unit.sensors`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from unit import board

if TYPE_CHECKING:
    from unit.config import GpioConfig

BACKENDS = ("auto", "gpiozero", "gpiod", "mock")


def backend(cfg: "GpioConfig", root: str = "/") -> str:
    """The backend `cfg` means on this board (`auto` resolved)."""
    if cfg.backend != "auto":
        return cfg.backend
    return "gpiod" if board.detect(root) == board.JETSON else "gpiozero"


def make_factory(cfg: "GpioConfig", root: str = "/") -> Any:
    """The pin factory for `cfg`; None for gpiozero's own choice (its default, GPIOZERO_PIN_FACTORY)."""
    name = backend(cfg, root)
    if name == "gpiod":
        import gpiod  # noqa: F401  (here, so a missing library is said at start, not at the first pin)

        from unit.gpiod_pins import GpiodFactory
        return GpiodFactory(cfg.chip)
    if name == "mock":
        from gpiozero.pins.mock import MockFactory
        return MockFactory()
    return None


def setup(cfg: "GpioConfig", root: str = "/") -> str:
    """Make the configured backend gpiozero's pin factory; returns its name for logs and health. A
    backend that cannot load (gpiod not installed) raises ImportError naming the package."""
    from gpiozero import Device
    try:
        factory = make_factory(cfg, root)
    except ImportError as exc:
        raise ImportError(f"GPIO backend {backend(cfg, root)!r}: {exc} (pip install gpiod, the 'jetson' extra; "
                          "firmware/install.sh installs it on a Jetson)") from None
    if factory is not None:
        Device.pin_factory = factory
    return describe(cfg, root)


def describe(cfg: "GpioConfig", root: str = "/") -> str:
    name = backend(cfg, root)
    if name == "gpiod":
        return f"gpiod (libgpiod, bare offsets on {cfg.chip})"
    if name == "gpiozero":
        from gpiozero import Device
        current = type(Device.pin_factory).__name__ if Device.pin_factory is not None else "its default"
        return f"gpiozero ({current})"
    return name
