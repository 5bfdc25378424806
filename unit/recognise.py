"""Plate recognition on the device: detect on a downscaled frame, read from the full-resolution crop.

(Interface first; the implementation lands with the trained models.)
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Candidate:
    plate: str
    score: float


@dataclass
class PlateRead:
    box: tuple[int, int, int, int]      # x0, y0, x1, y1 in pixels of the image given
    text: str                           # normalised A-Z0-9, best candidate after format re-ranking
    confidence: float                   # 0..1
    candidates: list[Candidate] = field(default_factory=list)   # top-N, best first
    det_score: float = 0.0              # detector confidence of the box
    region: str = ""                    # region guess from the plate format ("us-ca", "us", "eu", "")
    crop: np.ndarray | None = None      # RGB uint8 crop from the full-resolution image
