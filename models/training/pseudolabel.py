"""Pseudo-label real plate crops from the training scenes with a general OCR (RapidOCR, Apache-2.0,
weights inside its wheel), keeping only reads that look like a plate and that RapidOCR either gives
with high confidence (>= 0.90) or gives alike on two differently framed crops of the same box with
moderate confidence (>= 0.70 on both): two framings agreeing is evidence that a single score is not.

    python -m models.training.pseudolabel --out cache/pseudo

Writes crops (PNG, with a margin) and labels.csv (file,text,confidence,split). Benchmark data is
never touched here.
"""
from __future__ import annotations

import argparse
import csv
import re
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from models.training.datasets import MIN_WIDTH, Scene, crop_name, plate_crop, read_boxes, scenes
from models.training.handlabel import HAND_LABELS, hand_labels, save_crops

PLATE_LIKE = re.compile(r"^(?=.*\d)[A-Z0-9]{4,8}$")


def normalise(text: str) -> str:
    return re.sub(r"[^A-Z0-9]", "", text.upper())


def read_plate(engine, crop: Image.Image, min_conf: float, lines: bool = True) -> tuple[str, float]:
    """RapidOCR's reading of one crop: the recogniser alone, else (with `lines`) its detected lines
    joined (two-line and cluttered plates), keeping lines at or above `min_conf`."""
    arr = np.asarray(crop)
    res, _ = engine(arr, use_det=False, use_cls=False, use_rec=True)
    text, conf = (normalise(res[0][0]), float(res[0][1])) if res else ("", 0.0)
    if (PLATE_LIKE.match(text) and conf >= min_conf) or not lines:
        return text, conf
    res2, _ = engine(arr)
    parts = [(normalise(r[1]), float(r[2])) for r in (res2 or []) if float(r[2]) >= min_conf]
    joined = "".join(p for p, _ in parts)
    if parts and PLATE_LIKE.match(joined) and len(parts) <= 2:
        return joined, min(c for _, c in parts)
    return text, conf


def scene_boxes(split: str, min_width: int = MIN_WIDTH) -> dict[str, tuple[Scene, tuple[float, float, float, float]]]:
    """crop file -> (scene, plate box) for the whole split, as the labeller names the crops."""
    return {name: (sc, box) for sc in scenes(split) for name, box in read_boxes(split, sc, min_width)}


def full_scene(path: Path, size: tuple[int, int]) -> Image.Image:
    """A scene's image, refused unless it has the size its labels give (`Scene.width`, `.height`):
    plate boxes are in those pixels, and a bundle for another machine (models.training.bundle)
    carries the scenes downscaled as backgrounds only, where a box would cut the wrong place."""
    im = Image.open(path)
    if im.size != tuple(size):
        raise ValueError(f"{path}: {im.width}x{im.height}, but its labels say {size[0]}x{size[1]}; "
                         "cutting plates from the scene (--scene-variants) needs the full-size training scenes, "
                         "not a bundle's downscaled ones")
    return im.convert("RGB")


LABEL_FIXES = Path(__file__).with_name("label_fixes.csv")


def label_fixes(path: Path = LABEL_FIXES) -> dict[str, tuple[str, str]]:
    """crop file -> (RapidOCR's text, the text read by eye, '' to drop the crop). RapidOCR misreads
    plates in patterns (an EU band's country letter kept, a German registration seal read as O or 6,
    a Romanian B read as 8); these corrections were made by looking at every crop where the reader and
    RapidOCR disagree (models/README.md)."""
    with open(path) as f:
        return {row["file"]: (row["was"], row["text"]) for row in csv.DictReader(f)}


def read_labels(pseudo: Path, fixes: bool = True, fixes_path: Path = LABEL_FIXES,
                hand_path: Path | None = None, hand: bool = True) -> list[dict[str, str]]:
    """labels.csv's rows with the checked corrections applied (a correction applies only while
    RapidOCR's text is still the one that was checked) and the crops judged unreadable left out; with
    `fixes` and `hand`, also the crops RapidOCR skipped that two readers read alike (handlabel.py): the
    labelling run saves their crops too."""
    fix = label_fixes(fixes_path) if fixes else {}
    out = []
    with open(pseudo / "labels.csv") as f:
        for row in csv.DictReader(f):
            was, text = fix.get(row["file"], (None, None))
            if was is not None and was == row["text"]:
                if not text:
                    continue
                row = {**row, "text": text, "checked": "1"}
            out.append(row)
    if fixes and hand:
        seen = {row["file"] for row in out}
        labelled = {n: v for n, v in hand_labels(hand_path or HAND_LABELS).items() if v[0] and n not in seen}
        saved = {n: v for n, v in labelled.items() if (pseudo / "crops" / n).exists()}
        if len(saved) < len(labelled):
            print(f"read_labels: {len(labelled) - len(saved)} crops read by eye are not in {pseudo / 'crops'} and "
                  "are left out: run `python -m models.training.pseudolabel` again to save them", file=sys.stderr)
        for name, (text, split) in saved.items():
            out.append({"file": name, "text": text, "confidence": "", "split": split, "checked": "1"})
    return out


def valid_labels(pseudo: Path, fixes: bool = True, unseen: bool = False) -> dict[str, str]:
    """crop file -> label, valid split only; with `unseen`, only plates whose text no training crop
    has (the dash-cam videos put frames of the same car in both splits)."""
    rows = read_labels(pseudo, fixes)
    seen = {row["text"] for row in rows if row["split"] == "train"} if unseen else set()
    return {row["file"]: row["text"] for row in rows if row["split"] == "valid" and row["text"] not in seen}


def write_valid_folder(pseudo: Path, dest: Path, unseen: bool = False) -> int:
    """The valid split's crops and labels in the benchmark's crops format, so the whole recogniser
    (beam search, format re-ranking) can be measured on real plates that are not the benchmark."""
    labels = valid_labels(pseudo, unseen=unseen)
    dest.mkdir(parents=True, exist_ok=True)
    with open(dest / "groundtruth.csv", "w", newline="") as g:
        w = csv.writer(g)
        w.writerow(["file", "state", "plate"])
        for name, text in labels.items():
            shutil.copyfile(pseudo / "crops" / name, dest / name)
            w.writerow([name, "", text])
    n = len(labels)
    print(f"{n} valid crops -> {dest / 'groundtruth.csv'}", file=sys.stderr)
    return 0


def write_valid_scenes(pseudo: Path, dest: Path, unseen: bool = False) -> int:
    """Whole valid-split photos with one plate, in the benchmark's end-to-end format: the same kind
    of test as the benchmark, on photos that neither training nor the benchmark includes."""
    texts = valid_labels(pseudo, unseen=unseen)
    dest.mkdir(parents=True, exist_ok=True)
    n = 0
    for sc in scenes("valid"):
        text = texts.get(crop_name("valid", sc.image, 0))
        if len(sc.boxes) != 1 or text is None:
            continue
        x0, y0, x1, y1 = sc.boxes[0]
        name = f"{sc.image.stem[:60]}.jpg"
        Image.open(sc.image).convert("RGB").save(dest / name, quality=95)
        (dest / f"{sc.image.stem[:60]}.txt").write_text(
            f"{name}\t{x0:.0f}\t{y0:.0f}\t{x1 - x0:.0f}\t{y1 - y0:.0f}\t{text}\n")
        n += 1
    print(f"{n} one-plate valid scenes -> {dest}", file=sys.stderr)
    return 0


def write_eye_labels(out: Path, fixes_path: Path = LABEL_FIXES, hand_path: Path | None = None,
                     min_width: int = MIN_WIDTH) -> int:
    """labels.csv and crops for the crops whose text was read by eye only: the corrected RapidOCR reads
    (label_fixes.csv; written with RapidOCR's text, which read_labels then corrects) and the crops
    RapidOCR skipped (hand_labels.csv, which read_labels adds). No OCR runs: minutes instead of the
    hours a full labelling pass takes on a loaded 2-core machine, for a smaller set."""
    fixes = {n: was for n, (was, text) in label_fixes(fixes_path).items() if text}
    (out / "crops").mkdir(parents=True, exist_ok=True)
    with open(out / "labels.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "text", "confidence", "split"])
        for name, was in sorted(fixes.items()):
            w.writerow([name, was, "", name.split("-", 1)[0]])
    names = set(fixes) | {n for n, (text, _) in hand_labels(hand_path or HAND_LABELS).items() if text}
    saved = save_crops(out, names, min_width)
    print(f"{len(fixes)} corrected + {len(names) - len(fixes)} hand-read crops ({saved} cut) -> {out}",
          file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="cache/pseudo")
    ap.add_argument("--min-conf", type=float, default=0.90, help="confidence accepted from one framing")
    ap.add_argument("--valid-folder", type=Path,
                    help="instead: write the pseudo-labelled valid crops as a crops-format folder "
                         "(groundtruth.csv) that `alpr-unit eval` reads, and exit")
    ap.add_argument("--valid-scenes", type=Path,
                    help="instead: write the valid split's one-plate scenes whose plate is pseudo-labelled "
                         "as an end-to-end folder (NAME.jpg + NAME.txt) for `alpr-unit eval` and "
                         "`hil/make-clips`, and exit")
    ap.add_argument("--unseen", action="store_true",
                    help="with --valid-folder/--valid-scenes: only plates whose text no training crop has")
    ap.add_argument("--agree-conf", type=float, default=0.70, help="confidence accepted when two framings agree")
    ap.add_argument("--min-width", type=int, default=MIN_WIDTH, help="smallest plate box read, pixels")
    ap.add_argument("--single-framing", action="store_true",
                    help="one framing only, as the first release's labels were made (with --min-width 40)")
    ap.add_argument("--read-by-eye-only", action="store_true",
                    help="no RapidOCR: label only the crops whose text was read by eye (label_fixes.csv, "
                         "hand_labels.csv), a smaller set in minutes")
    args = ap.parse_args(argv)
    if args.read_by_eye_only:
        return write_eye_labels(Path(args.out), min_width=args.min_width)
    if args.valid_folder:
        return write_valid_folder(Path(args.out), args.valid_folder, args.unseen)
    if args.valid_scenes:
        return write_valid_scenes(Path(args.out), args.valid_scenes, args.unseen)
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
            named = read_boxes(split, sc, args.min_width)
            if not named:
                continue
            im = Image.open(sc.image).convert("RGB")
            for name, (x0, y0, x1, y1) in named:
                w, h = x1 - x0, y1 - y0
                crop = plate_crop(im, (x0, y0, x1, y1))
                text, conf = read_plate(engine, crop, args.min_conf)
                if not (PLATE_LIKE.match(text) and conf >= args.min_conf):
                    if args.single_framing:
                        continue
                    # a second framing (tighter, upscaled; recogniser only, for time): agreement at a lower
                    # confidence is accepted
                    tight = im.crop((int(x0 - 0.02 * w), int(y0 - 0.04 * h), int(x1 + 0.02 * w), int(y1 + 0.04 * h)))
                    if tight.height < 48:
                        f = 48 / max(1, tight.height)
                        tight = tight.resize((max(1, int(tight.width * f)), 48), Image.BICUBIC)
                    text2, conf2 = read_plate(engine, tight, args.agree_conf, lines=False)
                    if text2 == text and min(conf, conf2) >= args.agree_conf:
                        conf = min(conf, conf2)
                    elif PLATE_LIKE.match(text2) and conf2 >= args.min_conf:
                        text, conf = text2, conf2
                    else:
                        continue
                if PLATE_LIKE.match(text):
                    crop.save(out / "crops" / name)
                    rows.append((name, text, f"{conf:.3f}", split))
    with open(out / "labels.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "text", "confidence", "split"])
        w.writerows(rows)
    print(f"kept {len(rows)} crops -> {out/'labels.csv'}", file=sys.stderr)
    # the crops RapidOCR skipped that were read by eye (hand_labels.csv) train too: save them as well
    saved = save_crops(out, {n for n, (text, _) in hand_labels().items() if text}, args.min_width)
    print(f"saved {saved} crops read by eye -> {out / 'crops'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
