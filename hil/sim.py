"""Image side of clip making: a vehicle approaching a fixed camera, simulated from one still picture.

No fonts and no training code here (the demo-clip builder adds synthetic plates on top of this): a
still becomes frames by scale (the vehicle grows as it comes closer; a view smaller than the picture
is framed by a blurred copy of it), motion blur that fades as the vehicle slows for the gate, and
exposure changes (auto exposure hunting, headlights), plus sensor noise at night.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

Box = tuple[float, float, float, float]


@dataclass
class Shot:
    """How one frame looks: `scale` of the picture about `focus` (1 = as photographed, <1 further
    away, >1 closer), vertical motion blur in pixels, exposure gain, noise sigma (grey levels)."""
    scale: float = 1.0
    blur_px: float = 0.0
    gain: float = 1.0
    noise: float = 0.0
    night: bool = False


def view(base: Image.Image, focus: tuple[float, float], scale: float) -> Image.Image:
    """The picture as seen with the vehicle `scale` times its photographed size, `focus` (the plate
    centre) kept where it is in the frame; the frame keeps the picture's size."""
    W, H = base.size
    fx, fy = focus
    if abs(scale - 1.0) < 1e-6:
        return base.copy()
    if scale > 1.0:
        cw, ch = W / scale, H / scale
        x0 = min(max(fx - fx / scale, 0.0), W - cw)
        y0 = min(max(fy - fy / scale, 0.0), H - ch)
        return base.resize((W, H), Image.BICUBIC, box=(x0, y0, x0 + cw, y0 + ch))
    small = base.resize((max(1, round(W * scale)), max(1, round(H * scale))), Image.LANCZOS)
    frame = base.filter(ImageFilter.GaussianBlur(max(4.0, W / 120)))
    frame.paste(small, (round(fx - fx * scale), round(fy - fy * scale)))
    return frame


def motion_blur(im: Image.Image, px: float) -> Image.Image:
    """Blur along the direction of travel (towards the camera: mostly vertical in the frame)."""
    k = int(round(px))
    if k < 2:
        return im
    k = min(k, 15) | 1
    arr = np.asarray(im, dtype=np.float32)
    pad = k // 2
    padded = np.pad(arr, ((pad, pad), (0, 0), (0, 0)), mode="edge")
    out = np.zeros_like(arr)
    for i in range(k):
        out += padded[i:i + arr.shape[0]]
    return Image.fromarray(np.clip(out / k, 0, 255).astype(np.uint8))


def expose(im: Image.Image, gain: float, noise: float, rng: np.random.Generator, night: bool = False) -> Image.Image:
    if abs(gain - 1.0) < 1e-6 and noise <= 0 and not night:
        return im
    arr = np.asarray(im, dtype=np.float32) * gain
    if noise > 0:
        arr += rng.normal(0.0, noise, size=arr.shape[:2])[..., None]     # luminance noise, like a sensor
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def render(base: Image.Image, focus: tuple[float, float], shot: Shot, rng: np.random.Generator) -> Image.Image:
    im = view(base, focus, shot.scale)
    im = motion_blur(im, shot.blur_px)
    return expose(im, shot.gain, shot.noise, rng, shot.night)


def jpeg(im: Image.Image, quality: int) -> bytes:
    out = io.BytesIO()
    im.convert("RGB").save(out, "JPEG", quality=quality, optimize=True)
    return out.getvalue()


def approach(n_before: int, n_burst: int, rng: np.random.Generator, start_scale: float = 0.7,
             end_scale: float = 1.0, blur_far: float = 5.0, exposure: float = 0.12, night: bool = False,
             noise: float = 0.0) -> list[Shot]:
    """Shots of one approach: `n_before` frames while the vehicle comes (scale rising, blur fading),
    then `n_burst` frames as it slows to a stop at `end_scale` (the last two exactly at it)."""
    n = n_before + n_burst
    shots = []
    for i in range(n):
        u = min(1.0, i / max(1, n - 3))                   # reaches 1 two frames before the end
        ease = 1 - (1 - u) ** 2                            # decelerating
        scale = start_scale + (end_scale - start_scale) * ease
        blur = blur_far * (1 - ease)
        gain = 1.0 + float(rng.uniform(-exposure, exposure)) if exposure else 1.0
        shots.append(Shot(scale, blur, gain, noise, night))
    return shots


def pixelate(im: Image.Image, box: Box, block: int = 8) -> None:
    """Make a real plate unreadable in place (scenes keep their own plates out of the clips)."""
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    x0, y0 = max(0, x0 - 2), max(0, y0 - 2)
    x1, y1 = min(im.width, x1 + 2), min(im.height, y1 + 2)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return
    region = im.crop((x0, y0, x1, y1))
    small = region.resize((max(1, (x1 - x0) // block), max(1, (y1 - y0) // block)), Image.BILINEAR)
    im.paste(small.resize(region.size, Image.NEAREST), (x0, y0))
