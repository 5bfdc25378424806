"""Readers for the training sets in ../shared/data/train (boxes only, no plate text)."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

SHARED = Path(os.environ.get("ALPR_SHARED", Path(__file__).resolve().parents[2].parent / "shared"))
TRAIN_ROOT = SHARED / "data" / "train"
SYNTH_ROOT = SHARED / "data" / "synth"
SETS = ("open-images-plates", "ro-dashcam")


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
