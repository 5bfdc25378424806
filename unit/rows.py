"""Two-row plates: finding the gap between the rows, and laying the rows side by side.

The reader reads one line of characters (CTC along the plate's width), so a plate with two rows of
characters (European square plates, trucks' and trailers' rear plates, motorcycles) reads as one row
or a mix of both. Cut at the gap between the rows and laid side by side, the two rows look like one
long plate, which the reader reads as it is (top row first). The gap is found from the rows' ink: a
two-row plate has two tall bands of ink with an empty line between them near the middle; a one-row
plate with a state name above its characters has a short band there, or none.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

MAX_ASPECT = 2.6      # wider than this (width / height), a crop holds one row: EU long plates are ~4.7
PROFILE_ROWS = 32     # the crop is resized to this height before its rows' ink is measured
GAP_INK = 0.12        # the gap's row has at most this share of ink across the plate's middle
BAND_ROWS = 0.2       # each row of characters covers at least this share of the height ...
BAND_INK = (0.2, 0.85)  # ... with rows of this share of ink (more is a frame, a bumper, the dark edge)


def ink_profile(crop: np.ndarray, rows: int = PROFILE_ROWS) -> np.ndarray:
    """Share of ink in each of `rows` rows across the middle 70 % of the crop's width.

    Ink is the darker or the lighter side of Otsu's threshold, whichever is the smaller: characters
    cover less of a plate than its background, dark on light or light on dark.
    """
    h, w = crop.shape[:2]
    im = Image.fromarray(np.ascontiguousarray(crop)).convert("L")
    g = np.asarray(im.resize((max(8, round(rows * w / h)), rows), Image.BILINEAR))
    core = g[:, int(g.shape[1] * 0.15):int(g.shape[1] * 0.85)]
    p = np.bincount(core.ravel(), minlength=256) / core.size
    omega, mu = p.cumsum(), (p * np.arange(256)).cumsum()
    between = (mu[-1] * omega - mu) ** 2 / np.maximum(omega * (1 - omega), 1e-12)
    ink = core <= int(between.argmax())
    if ink.mean() > 0.5:
        ink = ~ink
    return ink.mean(axis=1)


def split_row(crop: np.ndarray) -> int | None:
    """The row (in the crop's pixels) between a two-row plate's rows of characters, or None when the
    crop does not look like a two-row plate."""
    h, w = crop.shape[:2]
    if h < 16 or w < 16 or w / h > MAX_ASPECT:
        return None
    prof = ink_profile(crop)
    n = len(prof)
    band = lambda seg: int(((seg >= BAND_INK[0]) & (seg <= BAND_INK[1])).sum())
    # every empty enough row in the middle, nearest the middle first: a loose box can hold other empty
    # rows (a bumper's edge, the plate's frame) besides the gap between the rows of characters
    for gap in sorted(range(int(n * 0.3), int(np.ceil(n * 0.7))), key=lambda r: abs(r + 0.5 - n / 2)):
        if (prof[gap] <= GAP_INK and band(prof[:gap]) >= BAND_ROWS * n
                and band(prof[gap + 1:]) >= BAND_ROWS * n):
            return int(round((gap + 0.5) * h / n))
    return None


def side_by_side(crop: np.ndarray, row: int) -> np.ndarray:
    """The rows above and below `row`, scaled to one height and laid left to right."""
    top = Image.fromarray(np.ascontiguousarray(crop[:row]))
    bottom = Image.fromarray(np.ascontiguousarray(crop[row:]))
    h = max(top.height, bottom.height)
    top = top.resize((max(1, round(top.width * h / top.height)), h), Image.BILINEAR)
    bottom = bottom.resize((max(1, round(bottom.width * h / bottom.height)), h), Image.BILINEAR)
    out = Image.new(top.mode, (top.width + bottom.width, h))
    out.paste(top, (0, 0))
    out.paste(bottom, (top.width, 0))
    return np.asarray(out)
