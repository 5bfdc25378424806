"""Measure the recogniser on a folder of labelled photos (`alpr-unit eval DIR`).

Two folder formats (those of the public openalpr benchmarks), detected automatically:
- end to end: NAME.jpg + NAME.txt, the .txt holding one line `NAME.jpg x y w h PLATE` (tab or space
  separated; box in pixels of the image);
- crops (reading only): plate images + groundtruth.csv with a header and rows `file,state,plate`.

`--split train|valid` measures one part of a folder split by a hash of each file's name, as the
project splits the openalpr benchmark folders for training and choosing (`split_of`).

"Exact" compares upper-case letters and digits only. For end-to-end photos the unit's answer for an
image is its most confident read (a unit reports one plate per vehicle); "detected" means some read's
box has IoU >= 0.3 with the truth box. Milliseconds are per image after decoding (recognition only).
"""
from __future__ import annotations

import csv
import hashlib
import resource
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from unit.config import RecognitionConfig
from unit.detect import iou
from unit.plates import edit_distance, normalise
from unit.sources.frames import BadFrame, decode_image


class EvalInputError(ValueError):
    """The folder or its ground truth is unusable; the message names the file (and line)."""


@dataclass
class Item:
    image: Path
    plate: str
    box: tuple[float, float, float, float] | None    # x0 y0 x1 y1, end-to-end only


SPLITS = ("train", "valid")


def split_of(name: str) -> str:
    """'valid' when `int(sha1(name).hexdigest(), 16) % 8 == 0`, else 'train': the fixed split of the
    benchmark folders (../shared/data/SOURCES.md). `name` is a photo's file name without its extension,
    or a crop's file name as groundtruth.csv writes it (`split_key`)."""
    return "valid" if int(hashlib.sha1(name.encode()).hexdigest(), 16) % 8 == 0 else "train"


def split_key(image: Path, fmt: str) -> str:
    return image.stem if fmt == "endtoend" else image.name


def detect_format(folder: Path) -> str:
    if not folder.is_dir():
        raise EvalInputError(f"{folder}: not a folder")
    if (folder / "groundtruth.csv").is_file():
        return "crops"
    if any(p.suffix.lower() == ".txt" for p in folder.iterdir()):
        return "endtoend"
    raise EvalInputError(f"{folder}: no groundtruth.csv and no NAME.txt labels: nothing to evaluate")


def load_endtoend(folder: Path) -> list[Item]:
    items = []
    for txt in sorted(folder.glob("*.txt")):
        lines = [(n, l) for n, l in enumerate(txt.read_text(errors="replace").splitlines(), 1) if l.strip()]
        if not lines:
            raise EvalInputError(f"{txt}:1: empty label file")
        for n, line in lines:
            parts = line.split()
            if len(parts) < 6:
                raise EvalInputError(f"{txt}:{n}: expected 'NAME.jpg x y w h PLATE', got {line.strip()!r}")
            try:
                x, y, w, h = (float(v) for v in parts[1:5])
            except ValueError:
                raise EvalInputError(f"{txt}:{n}: box must be four numbers, got {parts[1:5]}") from None
            plate = normalise("".join(parts[5:]))
            if not plate or w <= 0 or h <= 0:
                raise EvalInputError(f"{txt}:{n}: empty plate or non-positive box size")
            items.append(Item(txt.parent / parts[0], plate, (x, y, x + w, y + h)))
    if not items:
        raise EvalInputError(f"{folder}: no labelled images")
    return items


def load_crops(folder: Path) -> list[Item]:
    gt = folder / "groundtruth.csv"
    items = []
    with open(gt, newline="", errors="replace") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise EvalInputError(f"{gt}:1: empty file")
    header = [h.strip().lower() for h in rows[0]]
    if "file" not in header or "plate" not in header:
        raise EvalInputError(f"{gt}:1: header must name 'file' and 'plate' columns, got {rows[0]}")
    fi, pi = header.index("file"), header.index("plate")
    for n, row in enumerate(rows[1:], 2):
        if not any(c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise EvalInputError(f"{gt}:{n}: expected {len(header)} fields, got {len(row)}")
        plate = normalise(row[pi])
        if not row[fi].strip() or not plate:
            raise EvalInputError(f"{gt}:{n}: empty file name or plate")
        items.append(Item(folder / row[fi].strip(), plate, None))
    if not items:
        raise EvalInputError(f"{gt}: no rows")
    return items


def load_items(folder: Path, split: str | None = None) -> tuple[str, list[Item]]:
    """The folder's format and labelled items; with `split`, only that part of it (`split_of`)."""
    fmt = detect_format(folder)
    items = load_endtoend(folder) if fmt == "endtoend" else load_crops(folder)
    if split is not None:
        if split not in SPLITS:
            raise EvalInputError(f"split must be one of {SPLITS}, not {split!r}")
        items = [it for it in items if split_of(split_key(it.image, fmt)) == split]
        if not items:
            raise EvalInputError(f"{folder}: no labelled images in the {split} split")
    return fmt, items


def evaluate(folder: Path, threads: int = 1, top_n: int = 5, model_dir: Path | None = None,
             progress=None, framings: int = 2, two_row: bool = True, split: str | None = None) -> dict:
    """Read every labelled image (with `split`, those of that split only); the recogniser is the one a
    unit with these `[recognition]` keys runs."""
    from unit.recognise import from_config
    fmt, items = load_items(folder, split)
    rec = from_config(RecognitionConfig(model_dir=str(model_dir or ""), threads=threads, top_n=top_n,
                                        framings=framings, two_row_plates=two_row))
    exact = topn = detected = 0
    cer_sum = 0.0
    times: list[float] = []
    errors: list[str] = []
    wrong: list[dict] = []
    for k, it in enumerate(items, 1):
        try:     # one bad image (missing, corrupt, a decompression bomb, 1 x 1) is named and skipped
            arr = decode_image(it.image)
            t = time.perf_counter()
            if fmt == "crops":
                text, _, cands = rec.read_crop(arr)
            else:
                reads = rec.read(arr)
        except BadFrame as exc:
            errors.append(f"{it.image.name}: {exc}")
            continue
        if fmt == "crops":
            cand_texts = [c.plate for c in cands]
        else:
            text = reads[0].text if reads else ""
            cand_texts = [c.plate for c in reads[0].candidates] if reads else []
            if reads and iou(np.array(it.box), np.array([r.box for r in reads], float)).max() >= 0.3:
                detected += 1
        times.append((time.perf_counter() - t) * 1000)
        exact += text == it.plate
        topn += it.plate in cand_texts[:top_n]
        cer_sum += min(1.0, edit_distance(text, it.plate) / len(it.plate))
        if text != it.plate:
            wrong.append({"image": it.image.name, "truth": it.plate, "read": text})
        if progress and k % 25 == 0:
            progress(f"{k}/{len(items)} images")
    n = len(times)
    if n == 0:
        raise EvalInputError(f"{folder}: none of the {len(items)} images could be read")
    return {
        "folder": str(folder), "format": fmt, "split": split, "images": n, "unreadable": errors,
        "exact": exact / n, "topn": topn / n, "top_n": top_n,
        "detected": (detected / n) if fmt == "endtoend" else None,
        "cer": cer_sum / n,
        "ms_median": float(np.median(times)), "ms_p90": float(np.percentile(times, 90)),
        # as the recogniser reads, not as asked: reader passes per plate, two-row plates side by side
        "threads": threads, "framings": len(rec.framings), "two_row_plates": rec.two_row, "models": rec.versions(),
        # a model folder without detector.json falls back to the default threshold: show which applied
        "score_threshold": rec.score_threshold,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "misreads": wrong,
    }
