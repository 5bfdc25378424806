"""Real plates with text, from the openalpr benchmark folders in ../shared/data/benchmark, for training
the reader: the end-to-end photos (US, EU, BR; the plate cut from the photo as the unit frames a
detector box) and the US crops (groundtruth.csv).

The folders are split once and for all by a hash of each file's name (../shared/data/SOURCES.md): a
file is `valid` when `int(sha1(NAME).hexdigest(), 16) % 8 == 0`, NAME being the photo's name without
its extension, or the crop's file name as groundtruth.csv writes it. Training reads `train` only;
`valid` is for choosing (models/training/choose.py). The repository these folders come from is
AGPL-3.0: `train_reader --no-benchmark` trains without them.
"""
from __future__ import annotations

import functools
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from models.training.datasets import SHARED
from unit.evaluate import split_key, split_of     # the one definition of the split, shared with `alpr-unit eval --split`

BENCHMARK = SHARED / "data" / "benchmark"
PHOTO_SETS = ("us", "eu", "br")
AUGMENT_VERSION = 1           # part of the cache key of rendered sets: raise it when `augment` changes


@dataclass(frozen=True)
class RealPlate:
    image: Path
    text: str
    box: tuple[float, float, float, float] | None    # x0 y0 x1 y1 in the photo; None for a crop
    source: str                                      # "endtoend/us", "crops/us", ...


def real_plates(split: str, root: Path | None = None) -> list[RealPlate]:
    """Every labelled plate of one split of the benchmark folders (default `BENCHMARK`), in a stable
    order (photos, then crops)."""
    from unit.evaluate import load_crops, load_endtoend
    root = BENCHMARK if root is None else root
    if split not in ("train", "valid"):
        raise ValueError(f"split must be 'train' or 'valid', not {split!r}")
    out: list[RealPlate] = []
    for country in PHOTO_SETS:
        folder = root / "endtoend" / country
        if folder.is_dir():
            out += [RealPlate(it.image, it.plate, it.box, f"endtoend/{country}") for it in load_endtoend(folder)
                    if split_of(split_key(it.image, "endtoend")) == split]
    crops = root / "crops" / "us"
    if (crops / "groundtruth.csv").is_file():
        out += [RealPlate(it.image, it.plate, None, "crops/us") for it in load_crops(crops)
                if split_of(split_key(it.image, "crops")) == split]
    return out


@functools.lru_cache(maxsize=8)
def _image(path: Path) -> Image.Image:
    with Image.open(path) as im:
        return im.convert("RGB")


def perspective(rng: np.random.Generator, im: Image.Image, strength: float = 0.08) -> Image.Image:
    """The plate seen a little from the side or from above: each corner of the view moved by up to
    `strength` of the image's size, edge pixels repeated where the warp reaches outside."""
    from models.training.synth import _perspective_coeffs
    w, h = im.size
    mx, my = int(np.ceil(strength * w)) + 1, int(np.ceil(strength * h)) + 1
    padded = Image.fromarray(np.pad(np.asarray(im), ((my, my), (mx, mx), (0, 0)), mode="edge"))
    d = lambda s: rng.uniform(-strength, strength) * s
    # output corners (the whole view) come from these points of the padded image
    src = [(mx + d(w), my + d(h)), (mx + w + d(w), my + d(h)), (mx + w + d(w), my + h + d(h)), (mx + d(w), my + h + d(h))]
    dst = [(0, 0), (w, 0), (w, h), (0, h)]
    return padded.transform((w, h), Image.PERSPECTIVE, _perspective_coeffs(src, dst), Image.BILINEAR)


def small(rng: np.random.Generator, im: Image.Image, min_w: int = 32, max_w: int = 80) -> Image.Image:
    """A distant plate: brought down to `min_w`-`max_w` pixels wide (what a far car gives the reader)."""
    w = int(rng.integers(min_w, max_w + 1))
    if im.width <= w:
        return im
    return im.resize((w, max(4, round(im.height * w / im.width))), Image.BOX)


def low_light(rng: np.random.Generator, im: Image.Image) -> Image.Image:
    """Night under street lights: dark, a colour cast, sensor noise lifted by the camera's gain."""
    arr = np.asarray(im, np.float32) * rng.uniform(0.25, 0.5)
    arr = arr * (np.array([1.25, 1.0, 0.6]) if rng.random() < 0.5 else np.array([0.85, 0.95, 1.2]))
    arr = arr + rng.normal(0, rng.uniform(2, 7), arr.shape)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def glare(rng: np.random.Generator, im: Image.Image) -> Image.Image:
    """A headlight or sun reflection: a bright streak across part of the plate."""
    arr = np.asarray(im, np.float32)
    h, w = arr.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    angle = rng.uniform(0, np.pi)
    dist = np.abs((xx - rng.uniform(0, w)) * np.sin(angle) - (yy - rng.uniform(0, h)) * np.cos(angle))
    arr = arr + rng.uniform(90, 200) * np.exp(-(dist / (rng.uniform(0.05, 0.25) * w)) ** 2)[..., None]
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def jpeg(rng: np.random.Generator, im: Image.Image) -> Image.Image:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=int(rng.integers(20, 60)))
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def augment(rng: np.random.Generator, im: Image.Image) -> Image.Image:
    """What real plates need on top of `synth.damage` (blur, exposure, noise, low resolution, JPEG):
    perspective, distance, night, glare, hard compression, each now and then."""
    from models.training.synth import damage
    if rng.random() < 0.35:
        im = perspective(rng, im)
    # one of the harsher conditions at most, so that the plate stays readable to a person
    hard = rng.random()
    if hard < 0.2:
        im = small(rng, im)
    elif hard < 0.32:
        im = low_light(rng, im)
    elif hard < 0.42:
        im = glare(rng, im)
    elif hard < 0.52:
        im = jpeg(rng, im)
    if rng.random() < 0.6:
        im = damage(rng, im)
    return im


def _cut(im: Image.Image, box: tuple[float, float, float, float]) -> Image.Image:
    """The box cut from the image, edge pixels repeated where it runs past the border (as the unit pads)."""
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    x0, x1 = min(x0, x1 - 2), max(x1, x0 + 2)
    y0, y1 = min(y0, y1 - 2), max(y1, y0 + 2)
    arr = np.asarray(im)
    H, W = arr.shape[:2]
    ys = np.clip(np.arange(y0, y1), 0, H - 1)
    xs = np.clip(np.arange(x0, x1), 0, W - 1)
    return Image.fromarray(arr[ys][:, xs])


def plate_view(rng: np.random.Generator | None, plate: RealPlate) -> Image.Image:
    """The plate as the reader is given it: from a photo, the labelled box as the unit frames a
    detector box (`synth.detector_framing`, seeded) or, with no rng, the box as it is; a crop as saved
    or, with an rng, trimmed or padded as the unit's crop framings are."""
    from models.training.synth import detector_framing
    im = _image(plate.image)
    if plate.box is not None:
        return _cut(im, detector_framing(rng, plate.box) if rng is not None else plate.box)
    if rng is None:
        return im
    w, h = im.size
    e = lambda s, sd: s * rng.normal(0.0, sd)
    return _cut(im, (e(w, 0.04), e(h, 0.07), w - e(w, 0.04), h - e(h, 0.07)))


def render_real(split: str, variants: int, seed: int, plates: list[RealPlate] | None = None,
                weights: dict[str, float] | None = None) -> tuple[np.ndarray, list[str]]:
    """The reader's inputs for one split's real plates: each once as the unit frames it, and
    `variants` x its source's weight (`weights`, default 1) more, framed and augmented at random."""
    from unit.preprocess import READER_H, READER_W, reader_input
    rng = np.random.default_rng(seed)
    plates = real_plates(split) if plates is None else plates
    xs, ys = [], []
    for p in plates:
        xs.append(reader_input(plate_view(None, p))); ys.append(p.text)
        for _ in range(int(round(variants * (weights or {}).get(p.source, 1.0)))):
            xs.append(reader_input(augment(rng, plate_view(rng, p)))); ys.append(p.text)
    return (np.stack(xs) if xs else np.zeros((0, READER_H, READER_W), np.uint8)), ys
