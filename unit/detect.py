"""Turning the detector's output grid into plate boxes.

The detector predicts, for every cell of a stride-8 grid over the letterboxed frame, a plate score and
the distances from the cell centre to the plate's four edges (in units of BOX_UNIT pixels), so one
output tensor carries both with a usable int8 range.
"""
from __future__ import annotations

import numpy as np

STRIDE = 8
BOX_UNIT = 64.0


def decode(out: np.ndarray, score_threshold: float, max_boxes: int = 8,
           nms_iou: float = 0.3) -> list[tuple[float, float, float, float, float]]:
    """out: (H, W, 5) = score, l, t, r, b. Returns [(x0, y0, x1, y1, score)] in detector pixels."""
    score = out[..., 0]
    ys, xs = np.where(score >= score_threshold)
    if len(ys) == 0:
        return []
    s = score[ys, xs]
    cx = (xs + 0.5) * STRIDE
    cy = (ys + 0.5) * STRIDE
    d = out[ys, xs, 1:5] * BOX_UNIT
    boxes = np.stack([cx - d[:, 0], cy - d[:, 1], cx + d[:, 2], cy + d[:, 3]], axis=1)
    keep = nms(boxes, s, nms_iou)[:max_boxes]
    return [(*map(float, boxes[i]), float(s[i])) for i in keep]


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of one box a (4,) against boxes b (N, 4)."""
    x0 = np.maximum(a[0], b[:, 0]); y0 = np.maximum(a[1], b[:, 1])
    x1 = np.minimum(a[2], b[:, 2]); y1 = np.minimum(a[3], b[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = lambda z: np.clip(z[..., 2] - z[..., 0], 0, None) * np.clip(z[..., 3] - z[..., 1], 0, None)
    return inter / np.maximum(area(a) + area(b) - inter, 1e-9)


def nms(boxes: np.ndarray, scores: np.ndarray, thr: float) -> list[int]:
    order = list(np.argsort(-scores))
    keep: list[int] = []
    while order:
        i = order.pop(0)
        keep.append(int(i))
        if order:
            rest = np.array(order)
            ov = iou(boxes[i], boxes[rest])
            order = [int(j) for j, o in zip(rest, ov) if o < thr]
    return keep


def scale_box(box: tuple[float, float, float, float], sx: float, sy: float) -> tuple[float, float, float, float]:
    """A box grown (or shrunk) about its centre: sx times as wide, sy times as high."""
    x0, y0, x1, y1 = box
    cx, cy, hw, hh = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2 * sx, (y1 - y0) / 2 * sy
    return (cx - hw, cy - hh, cx + hw, cy + hh)
