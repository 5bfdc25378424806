"""The bundled test plate: one synthetic plate the shipped models must read exactly.

`testplate.jpg` was rendered once with the project's renderer (`models.training.synth`, seed 3, a
California-style plate 360 px wide in a plain 960x540 frame, no damage) and committed with its text.
`selftest` reads it with the unit's models: a wrong or missing read means the models on the unit are
damaged or not the ones shipped. To re-render (development machines only; it needs the renderer's
fonts and `../shared/data/synth`):

    .venv/bin/python -m provisioning.testplate --render provisioning/testplate.jpg
"""
from __future__ import annotations

import argparse
import io
from pathlib import Path

PATH = Path(__file__).resolve().parent / "testplate.jpg"
TEXT = "4RTA143"
SEED = 3
PLATE_W = 360
FRAME = (960, 540)


def load():
    """The test plate as an RGB uint8 array."""
    from unit.sources.frames import decode_image
    return decode_image(PATH)


def render(out: Path) -> str:
    import numpy as np
    from PIL import Image

    from models.training import synth

    rng = np.random.default_rng(SEED)
    plate = synth.render_plate(rng)
    patch, _box = synth.composite(rng, plate.image, None, PLATE_W)
    patch = patch.convert("RGB")
    frame = Image.new("RGB", FRAME, patch.getpixel((0, 0)))
    frame.paste(patch, ((FRAME[0] - patch.width) // 2, (FRAME[1] - patch.height) // 2))
    buf = io.BytesIO()
    frame.save(buf, "JPEG", quality=88)
    out.write_bytes(buf.getvalue())
    return plate.text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="re-render the bundled test plate (development only)")
    p.add_argument("--render", type=Path, required=True, metavar="OUT")
    args = p.parse_args(argv)
    text = render(args.render)
    print(f"{args.render}: {text}" + ("" if text == TEXT else f" (TEXT in this module says {TEXT}: update it)"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
