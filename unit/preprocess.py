"""Image preparation shared by the recogniser on the unit and the training code.

Training imports these very functions, so a model always sees at run time exactly what it saw while
it learned. Geometry is plain Pillow; no OpenCV on the unit.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

READER_H, READER_W = 40, 128     # reader (OCR) input, grey, stretched: plates of any aspect fill it
DET_W, DET_H = 672, 384          # detector input, RGB, letterboxed (the size is chosen in models/README.md)


def reader_input(crop: np.ndarray | Image.Image) -> np.ndarray:
    """A plate crop (RGB or grey) -> READER_H x READER_W uint8, contrast stretched."""
    im = crop if isinstance(crop, Image.Image) else Image.fromarray(np.ascontiguousarray(crop))
    u = np.asarray(im.convert("L").resize((READER_W, READER_H), Image.BILINEAR))
    lo, hi = percentiles_u8(u, (2.0, 98.0))
    g = u.astype(np.float32)
    if hi - lo < 8:
        hi = lo + 8
    g = (g - lo) * (255.0 / (hi - lo))
    return np.clip(g, 0, 255).astype(np.uint8)


def percentiles_u8(u: np.ndarray, qs: tuple[float, ...]) -> list[np.float64]:
    """`np.percentile(u, qs)` (linear interpolation) of a uint8 array, read off its histogram: the
    same values, four times faster than sorting, and this runs for every reader pass."""
    n = u.size
    cum = np.bincount(u.ravel(), minlength=256).cumsum()
    out = []
    for q in qs:
        p = q / 100.0 * (n - 1)
        f = int(p)
        t = p - f
        # the f-th and (f+1)-th smallest values: the first grey levels whose cumulative count passes them
        a, b = (float(v) for v in np.searchsorted(cum, [f + 1, min(n - 1, f + 1) + 1]))
        d = b - a
        # numpy's own lerp, bit for bit, and its float64 type: the stretch below then runs in float64
        # as it did with np.percentile (a plain float would keep it in float32 and move some pixels)
        out.append(np.float64(b - d * (1 - t) if t >= 0.5 else a + d * t))
    return out


@dataclass(frozen=True)
class Letterbox:
    scale: float      # detector pixels per original pixel
    pad_x: int
    pad_y: int

    def to_original(self, box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        x0, y0, x1, y1 = box
        s = self.scale
        return ((x0 - self.pad_x) / s, (y0 - self.pad_y) / s, (x1 - self.pad_x) / s, (y1 - self.pad_y) / s)


def letterbox(image: np.ndarray | Image.Image, size: tuple[int, int] = (DET_W, DET_H)) -> tuple[np.ndarray, Letterbox]:
    """Fit an RGB image into the detector input, keeping aspect, padding with grey."""
    im = image if isinstance(image, Image.Image) else Image.fromarray(np.ascontiguousarray(image))
    im = im.convert("RGB")
    W, H = size
    s = min(W / im.width, H / im.height)
    nw, nh = max(1, round(im.width * s)), max(1, round(im.height * s))
    canvas = Image.new("RGB", (W, H), (114, 114, 114))
    px, py = (W - nw) // 2, (H - nh) // 2
    canvas.paste(im.resize((nw, nh), Image.BILINEAR), (px, py))
    return np.asarray(canvas), Letterbox(s, px, py)
