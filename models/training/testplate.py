"""Render the test plate that `alpr-provision selftest` reads (`provisioning/testplate.jpg`).

Seed 3, a California-style plate 360 px wide in a plain 960x540 frame, no damage. The file is committed
with its text (`provisioning.testplate.TEXT`); rendering again needs the renderer's fonts and
`../shared/data/synth`, so it happens on a development machine only:

    .venv/bin/python -m models.training.testplate provisioning/testplate.jpg
"""
from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
from PIL import Image

from models.training import synth
from provisioning import testplate

SEED = 3
PLATE_W = 360
FRAME = (960, 540)


def render(out: Path) -> str:
    """Write the test plate to `out`; returns its text."""
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
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path, nargs="?", default=testplate.PATH,
                   help=f"where to write it (default {testplate.PATH})")
    args = p.parse_args(argv)
    text = render(args.out)
    print(f"{args.out}: {text}" + ("" if text == testplate.TEXT
                                   else f" (provisioning.testplate.TEXT says {testplate.TEXT}: update it)"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
