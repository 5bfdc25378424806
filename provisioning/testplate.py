"""The bundled test plate: one synthetic plate the shipped models must read exactly.

`testplate.jpg` is a California-style plate rendered by the training code's synthetic renderer
(`python -m models.training.testplate`), committed with its text. `selftest` reads it with the unit's
models: a wrong or missing read means the models on the unit are damaged or not the ones shipped.
"""
from __future__ import annotations

from pathlib import Path

PATH = Path(__file__).resolve().parent / "testplate.jpg"
TEXT = "4RTA143"


def load():
    """The test plate as an RGB uint8 array."""
    from unit.sources.frames import decode_image
    return decode_image(PATH)
