"""Recognition speed, size and memory figures (prints them; asserts nothing).

    .venv/bin/python benchmarks/bench_recognise.py [--threads 1] [--folder ../shared/data/benchmark/endtoend/us] [--against DIR]

- reader: ms per plate crop (crops/us images, decoded beforehand), median and p90;
- detector: ms per frame (letterbox + inference + decode);
- whole read of one photo (detect + crop + read), median and p90;
- both model files' size;
- peak RSS of a full `alpr-unit eval` run in a child process;
- the cost of reading two-row plates (`unit.rows`): the same timings with it on and off, in turns;
- with `--against DIR`: the same crop and photo timings for the models in DIR, taken in turns with the
  shipped ones in this run, and their ratio (the machines are shared and noisy: compare within a run).
"""
from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT.parent / "shared" / "data" / "benchmark"


def timed(fn, items, repeat=1):
    ts = []
    for _ in range(repeat):
        for it in items:
            t = time.perf_counter()
            fn(it)
            ts.append((time.perf_counter() - t) * 1000)
    return np.median(ts), np.percentile(ts, 90)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--folder", type=Path, default=BENCH / "endtoend" / "us")
    ap.add_argument("--against", type=Path, help="a model folder (detector + reader) to time against the shipped one")
    args = ap.parse_args()
    # first, while this process is small: a child's peak RSS counts what it inherited before exec
    subprocess.run([str(ROOT / ".venv" / "bin" / "alpr-unit"), "eval", str(args.folder), "--json",
                    "--threads", str(args.threads)], check=True, stdout=subprocess.DEVNULL)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    sys.path.insert(0, str(ROOT))
    from unit.recognise import MODEL_DIR, Recogniser
    rec = Recogniser(threads=args.threads)
    crops = [np.asarray(Image.open(p).convert("RGB")) for p in sorted((BENCH / "crops" / "us").glob("*.png"))[:150]]
    photos = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(args.folder.glob("*.jpg"))[:60]]
    for c in crops[:5]:
        rec.read_crop(c)
    m, p = timed(rec.read_crop, crops, repeat=2)
    print(f"reader, one crop:           median {m:6.2f} ms   p90 {p:6.2f} ms   ({len(crops)} crops x2, {args.threads} thread)")
    m, p = timed(rec.detect, photos)
    print(f"detector, one frame:        median {m:6.2f} ms   p90 {p:6.2f} ms   ({len(photos)} photos, {photos[0].shape[1]}x{photos[0].shape[0]})")
    m, p = timed(rec.read, photos)
    print(f"whole read of one photo:    median {m:6.2f} ms   p90 {p:6.2f} ms")
    size = sum((MODEL_DIR / f).stat().st_size for f in ("detector.tflite", "reader.tflite"))
    print(f"both models:                {size / 1e6:.2f} MB")
    print(f"peak RSS of alpr-unit eval: {peak:.0f} MB ({args.folder.name})")
    # the two-row path (unit.rows) costs a look at each plate's rows, and a reader pass more for each
    # framing of a plate whose rows it finds: timed in turns against a recogniser without it
    one_row = Recogniser(threads=args.threads, two_row=False)
    on, off = [], []
    for _ in range(3):
        on.append(timed(rec.read_crop, crops)[0]); off.append(timed(one_row.read_crop, crops)[0])
        on.append(timed(rec.read, photos)[0]); off.append(timed(one_row.read, photos)[0])
    print(f"two-row reading on / off:   one crop {np.median(on[0::2]):.2f} / {np.median(off[0::2]):.2f} ms "
          f"= {np.median(on[0::2]) / np.median(off[0::2]):.2f}, whole photo {np.median(on[1::2]):.2f} / "
          f"{np.median(off[1::2]):.2f} ms = {np.median(on[1::2]) / np.median(off[1::2]):.2f}")
    if args.against:
        other = Recogniser(model_dir=args.against, threads=args.threads)
        for c in crops[:5]:
            other.read_crop(c)
        ours, theirs = [], []
        for _ in range(3):     # in turns, so that both see the same load
            ours.append(timed(rec.read_crop, crops)[0]); theirs.append(timed(other.read_crop, crops)[0])
            ours.append(timed(rec.read, photos)[0]); theirs.append(timed(other.read, photos)[0])
        crop_ratio = np.median(ours[0::2]) / np.median(theirs[0::2])
        photo_ratio = np.median(ours[1::2]) / np.median(theirs[1::2])
        print(f"shipped / {args.against}: one crop {np.median(ours[0::2]):.2f} / {np.median(theirs[0::2]):.2f} ms "
              f"= {crop_ratio:.2f}, whole photo {np.median(ours[1::2]):.2f} / {np.median(theirs[1::2]):.2f} ms "
              f"= {photo_ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
