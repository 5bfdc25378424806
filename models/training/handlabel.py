"""Plates read by eye where RapidOCR gave no reading the labeller keeps.

RapidOCR keeps only the plates it reads confidently, so the real crops the reader trains on are the
easy ones; the small, blurred, tilted and two-line plates it skips are the ones the reader misreads.
This turns those crops into contact sheets for people (or agents) to read, and merges two readers'
independent readings: a text goes into `hand_labels.csv` only where both wrote the same, and a crop both called
unreadable is recorded as such so that it is not offered again.

    python -m models.training.handlabel sheets [--split train] [--out cache/sheets]
    python -m models.training.handlabel merge cache/sheets A.csv B.csv

A reader's CSV has the columns sheet,cell,text; text is the plate's letters and digits without
spaces, or empty when any character is in doubt. `merge` prints the disagreements and appends the
agreements to `hand_labels.csv` (file,text,split,reason). `pseudolabel.read_labels` adds these crops to
the pseudo-labelled ones, so `train_reader` trains on them by default.
"""
from __future__ import annotations

import argparse
import csv
import re
import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, ImageOps

from models.training.datasets import MIN_WIDTH, plate_crop, read_boxes, scenes

HAND_LABELS = Path(__file__).with_name("hand_labels.csv")
TEXT = re.compile(r"^[A-Z0-9]{2,10}$")


def hand_labels(path: Path | None = None) -> dict[str, tuple[str, str]]:
    """crop file -> (text read by eye, '' for unreadable; split)."""
    path = path or HAND_LABELS
    if not path.exists():
        return {}
    with open(path) as f:
        return {row["file"]: (row["text"], row["split"]) for row in csv.DictReader(f)}


def unlabelled_crops(pseudo: Path, split: str, min_width: int = MIN_WIDTH) -> list[str]:
    """The crops of the split's boxes (at least `min_width` px wide, named as the labeller names them)
    that labels.csv and hand_labels.csv lack, saved into pseudo/crops where missing."""
    with open(pseudo / "labels.csv") as f:
        known = {row["file"] for row in csv.DictReader(f)} | set(hand_labels())
    out = [name for sc in scenes(split) for name, _ in read_boxes(split, sc, min_width) if name not in known]
    save_crops(pseudo, set(out), min_width)
    return out


def save_crops(pseudo: Path, names: set[str], min_width: int = MIN_WIDTH) -> int:
    """Cut the named crops from their scenes into pseudo/crops, where missing: a fresh labelling run
    saves only the crops RapidOCR read, and the hand labels name crops it skipped."""
    missing = {n for n in names if not (pseudo / "crops" / n).exists()}
    saved = 0
    for split in sorted({n.split("-", 1)[0] for n in missing}):
        for sc in scenes(split):
            im = None
            for name, box in read_boxes(split, sc, min_width):
                if name in missing:
                    im = im or Image.open(sc.image).convert("RGB")
                    plate_crop(im, box).save(pseudo / "crops" / name)
                    saved += 1
    return saved


def contact_sheets(pseudo: Path, files: list[str], out: Path, per_sheet: int = 24, cols: int = 3) -> int:
    """Numbered sheets of crops scaled to a readable size, and index.csv (sheet,cell,file)."""
    out.mkdir(parents=True, exist_ok=True)
    cw, ch, label_h = 420, 150, 22
    font = ImageFont.load_default(size=18)
    rows = []
    for s in range(0, len(files), per_sheet):
        batch = files[s:s + per_sheet]
        sheet_no = s // per_sheet + 1
        n_rows = (len(batch) + cols - 1) // cols
        sheet = Image.new("RGB", (cols * cw, n_rows * (ch + label_h)), "white")
        draw = ImageDraw.Draw(sheet)
        for i, name in enumerate(batch):
            im = ImageOps.autocontrast(Image.open(pseudo / "crops" / name).convert("RGB"), cutoff=1)
            f = min((cw - 10) / im.width, (ch - 6) / im.height)
            im = im.resize((max(1, round(im.width * f)), max(1, round(im.height * f))), Image.BICUBIC)
            x, y = (i % cols) * cw, (i // cols) * (ch + label_h)
            draw.text((x + 4, y + 2), f"{i + 1}", fill="red", font=font)
            sheet.paste(im, (x + 5, y + label_h))
            rows.append((sheet_no, i + 1, name))
        sheet.save(out / f"sheet-{sheet_no:03d}.png")
    with open(out / "index.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["sheet", "cell", "file"])
        w.writerows(rows)
    return (len(files) + per_sheet - 1) // per_sheet


def read_sheet_csv(path: Path, index: dict[tuple[int, int], str]) -> dict[str, str]:
    """One reader's texts by crop file; a text that is not plate-like counts as 'in doubt'."""
    out = {}
    with open(path) as f:
        for row in csv.DictReader(f):
            key = (int(row["sheet"]), int(row["cell"]))
            if key not in index:
                raise SystemExit(f"{path}: sheet {key[0]} cell {key[1]} is not in the index")
            text = re.sub(r"\s", "", row.get("text") or "").upper()
            out[index[key]] = text if TEXT.match(text) else ""
    return out


def merge(sheets: Path, a: Path, b: Path, split: str, dest: Path | None = None) -> tuple[int, int, list]:
    """Appends to `dest` the crops both readers read alike (a text, or both in doubt); returns
    (texts, unreadable, disagreements as (file, a's text, b's text))."""
    with open(sheets / "index.csv") as f:
        index = {(int(r["sheet"]), int(r["cell"])): r["file"] for r in csv.DictReader(f)}
    ra, rb = read_sheet_csv(a, index), read_sheet_csv(b, index)
    dest = dest or HAND_LABELS
    have = hand_labels(dest)
    new, differ = [], []
    for name in sorted(set(ra) & set(rb)):
        if name in have:
            continue
        if ra[name] == rb[name]:
            new.append((name, ra[name], split, "two readers agree" if ra[name] else "unreadable to both"))
        else:
            differ.append((name, ra[name], rb[name]))
    fresh = not dest.exists()
    with open(dest, "a", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        if fresh:
            w.writerow(["file", "text", "split", "reason"])
        w.writerows(new)
    return sum(1 for r in new if r[1]), sum(1 for r in new if not r[1]), differ


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sheets", help="contact sheets of the crops RapidOCR left unlabelled")
    s.add_argument("--pseudo", type=Path, default=Path("cache/pseudo"))
    s.add_argument("--split", default="train", choices=("train", "valid"))
    s.add_argument("--out", type=Path, default=Path("cache/sheets"))
    s.add_argument("--per-sheet", type=int, default=24)
    m = sub.add_parser("merge", help="keep what two readers of the sheets read alike")
    m.add_argument("sheets", type=Path)
    m.add_argument("a", type=Path)
    m.add_argument("b", type=Path)
    m.add_argument("--split", default="train", choices=("train", "valid"))
    m.add_argument("--dest", type=Path, help=f"default: {HAND_LABELS.name} beside this module")
    args = ap.parse_args(argv)
    if args.cmd == "sheets":
        if not (args.pseudo / "labels.csv").exists():
            print(f"{args.pseudo / 'labels.csv'}: missing; run `python -m models.training.pseudolabel` first",
                  file=sys.stderr)
            return 2
        files = unlabelled_crops(args.pseudo, args.split)
        n = contact_sheets(args.pseudo, files, args.out, args.per_sheet)
        print(f"{len(files)} unlabelled {args.split} crops -> {n} sheets in {args.out}", file=sys.stderr)
        return 0
    texts, unreadable, differ = merge(args.sheets, args.a, args.b, args.split, args.dest)
    for name, ta, tb in differ:
        print(f"{name},{ta},{tb}")
    print(f"{texts} texts and {unreadable} unreadable agreed -> {args.dest or HAND_LABELS}; {len(differ)} disagreements "
          f"(above: file,a,b)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
