"""Pseudo-label real plate crops from the training scenes with a general OCR (RapidOCR, Apache-2.0,
weights inside its wheel), keeping only confident reads that look like a plate.

    python -m models.training.pseudolabel --out cache/pseudo

Writes crops (PNG, with a margin) and labels.csv (file,text,confidence,split). Benchmark data is
never touched here.
"""
from __future__ import annotations

import argparse
import csv
import re
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from models.training.datasets import scenes

PLATE_LIKE = re.compile(r"^(?=.*\d)[A-Z0-9]{4,8}$")
MIN_WIDTH = 40


def normalise(text: str) -> str:
    return re.sub(r"[^A-Z0-9]", "", text.upper())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="cache/pseudo")
    ap.add_argument("--min-conf", type=float, default=0.90)
    args = ap.parse_args(argv)
    from rapidocr_onnxruntime import RapidOCR
    engine = RapidOCR()
    out = Path(args.out)
    (out / "crops").mkdir(parents=True, exist_ok=True)
    rows = []
    for split in ("train", "valid"):
        items = scenes(split)
        for i, sc in enumerate(items):
            if i % 100 == 0:
                print(f"{split}: {i}/{len(items)} scenes, {len(rows)} kept", file=sys.stderr, flush=True)
            big = [b for b in sc.boxes if b[2] - b[0] >= MIN_WIDTH]
            if not big:
                continue
            im = Image.open(sc.image).convert("RGB")
            for k, (x0, y0, x1, y1) in enumerate(big):
                w, h = x1 - x0, y1 - y0
                crop = im.crop((int(x0 - 0.06 * w), int(y0 - 0.12 * h), int(x1 + 0.06 * w), int(y1 + 0.12 * h)))
                arr = np.asarray(crop)
                res, _ = engine(arr, use_det=False, use_cls=False, use_rec=True)
                text, conf = (normalise(res[0][0]), float(res[0][1])) if res else ("", 0.0)
                if not PLATE_LIKE.match(text) or conf < args.min_conf:
                    # two-line or cluttered plates: detect text lines, join the confident ones
                    res2, _ = engine(arr)
                    parts = [(normalise(r[1]), float(r[2])) for r in (res2 or []) if float(r[2]) >= args.min_conf]
                    joined = "".join(p for p, _ in parts)
                    if parts and PLATE_LIKE.match(joined) and len(parts) <= 2:
                        text, conf = joined, min(c for _, c in parts)
                if PLATE_LIKE.match(text) and conf >= args.min_conf:
                    name = f"{split}-{sc.image.stem[:40]}-{k}.png"
                    crop.save(out / "crops" / name)
                    rows.append((name, text, f"{conf:.3f}", split))
    with open(out / "labels.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "text", "confidence", "split"])
        w.writerows(rows)
    print(f"kept {len(rows)} crops -> {out/'labels.csv'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
