"""Readers for the training sets in ../shared/data/train (boxes only, no plate text), and the plate
crops cut from their scenes, named so that the labelling tools and the trainers find the same box."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

SHARED = Path(os.environ.get("ALPR_SHARED", Path(__file__).resolve().parents[2].parent / "shared"))
TRAIN_ROOT = SHARED / "data" / "train"
SYNTH_ROOT = SHARED / "data" / "synth"
SETS = ("open-images-plates", "ro-dashcam")
MIN_WIDTH = 28                    # px: narrower plate boxes are not cut out as crops


@dataclass
class Scene:
    image: Path
    width: int
    height: int
    boxes: list[tuple[float, float, float, float]]   # x0, y0, x1, y1 pixels


def scenes(split: str, sets: tuple[str, ...] = SETS) -> list[Scene]:
    """All labelled scenes of a split ('train' or 'valid'), in a stable order."""
    out: list[Scene] = []
    for name in sets:
        root = TRAIN_ROOT / name / split
        for label in sorted((root / "labels").glob("*.json")):
            j = json.loads(label.read_text())
            boxes = [tuple(float(v) for v in p["box_xyxy"]) for p in j.get("plates", [])]
            out.append(Scene(root / "images" / Path(j["image"]).name, int(j["width"]), int(j["height"]), boxes))
    return out


def crop_name(split: str, scene_image: Path, k: int) -> str:
    """File name of the k-th read box of a scene; the valid folders find scenes' labels by it."""
    return f"{split}-{scene_image.stem[:40]}-{k}.png"


def read_boxes(split: str, scene: Scene,
               min_width: int = MIN_WIDTH) -> list[tuple[str, tuple[float, float, float, float]]]:
    """The scene's boxes the labeller reads (at least `min_width` px wide), each with its crop's file
    name: the index in the name counts these boxes only, so whatever looks crops up by name must pick
    boxes the same way."""
    big = [b for b in scene.boxes if b[2] - b[0] >= min_width]
    return [(crop_name(split, scene.image, k), b) for k, b in enumerate(big)]


def plate_crop(im: Image.Image, box: tuple[float, float, float, float]) -> Image.Image:
    """A box with a margin of 6 % of its width and 12 % of its height on each side, as saved."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    return im.crop((int(x0 - 0.06 * w), int(y0 - 0.12 * h), int(x1 + 0.06 * w), int(y1 + 0.12 * h)))
