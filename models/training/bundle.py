"""A self-contained folder for training the reader on another machine, e.g. a GPU machine with JAX but
no TensorFlow and no access to `../shared` (`models/training/gpu_train.sh` runs it there).

The training scenes are only backgrounds for synthetic plates, so they travel downscaled (320 px on
the long side, JPEG 55); the labelled crops travel at most 64 px high (the reader sees 40); the
fonts are copied from this machine's Debian packages to the same absolute paths under `fonts/`; the
synthetic validation set and the shipped reader's float weights (`models.training.recover`) are
made here. About 44 MB in about 5,000 files with the
default settings, and written again as one gzipped tar file (`--tar`, about 38 MiB) for gpu_train.sh's
BUNDLE_TAR: small enough for a 64 MiB transfer with the repo and the Keras wheels (54 MiB in all on
28 Nov), where the loose files were not.

    python -m models.training.bundle [--out cache/bundle] [--seed 5]

Nothing in the bundle is committed: it is built from `../shared/data` and the system's fonts.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

from models.training.datasets import SETS, SYNTH_ROOT, TRAIN_ROOT

ROOT = Path(__file__).resolve().parents[2]


def shrink_scenes(out: Path, max_side: int, quality: int) -> int:
    n = 0
    for name in SETS:
        src = TRAIN_ROOT / name / "train"
        dst = out / "shared" / "data" / "train" / name / "train"
        (dst / "images").mkdir(parents=True, exist_ok=True)
        shutil.copytree(src / "labels", dst / "labels", dirs_exist_ok=True)
        for path in sorted((src / "images").iterdir()):
            im = Image.open(path).convert("RGB")
            f = max_side / max(im.size)
            if f < 1:
                im = im.resize((round(im.width * f), round(im.height * f)), Image.BILINEAR)
            im.save(dst / "images" / path.name, "JPEG", quality=quality)
            n += 1
    shutil.copytree(SYNTH_ROOT, out / "shared" / "data" / "synth", dirs_exist_ok=True)
    return n


def shrink_pseudo(src: Path, dst: Path, max_h: int = 64) -> int:
    if not (src / "labels.csv").exists():
        raise SystemExit(f"{src / 'labels.csv'}: missing; run `python -m models.training.pseudolabel` first")
    (dst / "crops").mkdir(parents=True, exist_ok=True)
    shutil.copy(src / "labels.csv", dst / "labels.csv")
    from models.training.handlabel import hand_labels
    from models.training.pseudolabel import read_labels
    # the crops a training run reads (labels.csv's and those read by eye), not the ones saved for reading
    names = {row["file"] for row in read_labels(src, fixes=False)} | {n for n, (t, _) in hand_labels().items() if t}
    n = 0
    for path in sorted(p for p in (src / "crops").iterdir() if p.name in names):
        im = Image.open(path)
        if im.height > max_h:
            im = im.resize((round(im.width * max_h / im.height), max_h), Image.LANCZOS)
        im.save(dst / "crops" / path.name, optimize=True)
        n += 1
    return n


def copy_fonts(out: Path) -> int:
    from models.training.synth import DECOR_FONTS, FONT_FILES
    n = 0
    for f in FONT_FILES + DECOR_FONTS:
        if os.path.exists(f):
            d = out / "fonts" / f.lstrip("/")
            d.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(f, d)
            n += 1
    return n


def size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "cache" / "bundle")
    ap.add_argument("--seed", type=int, default=5, help="the training seed: the synthetic valid set is seed + 1000")
    ap.add_argument("--max-side", type=int, default=320)
    ap.add_argument("--quality", type=int, default=55)
    ap.add_argument("--tar", type=Path, default=ROOT / "cache" / "gpu" / "bundle.tar.gz",
                    help="also write the bundle as this one gzipped tar file (what travels: the transfer "
                         "limit counts each small file's overhead)")
    ap.add_argument("--init-tflite", type=Path, default=ROOT / "models" / "reader.tflite",
                    help="int8 reader whose float weights go along for fine-tuning")
    args = ap.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    out: Path = args.out
    if out.exists():
        shutil.rmtree(out)
    cache = out / "cache"
    cache.mkdir(parents=True)
    print(f"scenes: {shrink_scenes(out, args.max_side, args.quality)}", file=sys.stderr)
    print(f"pseudo-labelled crops: {shrink_pseudo(ROOT / 'cache' / 'pseudo', cache / 'pseudo')}", file=sys.stderr)
    fonts = copy_fonts(out)
    if not fonts:
        raise SystemExit("no fonts found: install the Debian font packages the README lists")
    print(f"fonts: {fonts}", file=sys.stderr)
    from models.training.train_reader import synth_set
    x, y = synth_set(args.seed + 1000, 2000, "valid")
    np.savez_compressed(cache / f"reader-synth-valid-s{args.seed + 1000}-n2000.npz", x=x, y=np.array(y))
    from models.training.train_reader import float_reader
    model, width = float_reader(args.init_tflite)
    model.save_weights(str(cache / "reader-shipped.weights.h5"))
    print(f"{out}: {size(out) / 1e6:.1f} MB (shipped reader width {width:g})")
    args.tar.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(args.tar, "w:gz", compresslevel=6) as tar:
        tar.add(out, arcname="bundle")
    print(f"{args.tar}: {args.tar.stat().st_size / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
