"""Float Keras weights from a shipped int8 reader, so that the shipped model can be fine-tuned.

A training run's float weights live in `cache/`, which is scratch and not in the repository; the
int8 file is what ships and it holds every weight, quantised per output channel with batch norm
folded into the convs. Dequantised into the same architecture built without batch norm
(`train_reader.float_reader`, `train_detector.float_detector` for the detector), it gives the shipped
reads back (checked by `--check`).

    python -m models.training.recover [--tflite models/reader.tflite] [--out cache/reader-shipped.weights.h5]
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

from models.training.train_reader import float_reader, greedy_batch, pseudo_set, tflite_eval

ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tflite", default=str(ROOT / "models" / "reader.tflite"))
    ap.add_argument("--out", default=str(ROOT / "cache" / "reader-shipped.weights.h5"))
    ap.add_argument("--check", action="store_true", help="compare greedy reads with the int8 model on the pseudo-labelled valid crops")
    args = ap.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    model, width = float_reader(Path(args.tflite))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    model.save_weights(args.out)
    print(f"width {width:g}, {model.count_params()} parameters -> {args.out}")
    if args.check:
        x, y = pseudo_set("valid", 0, 1)
        if not len(x):
            print("no pseudo-labelled valid crops (run models.training.pseudolabel)", file=sys.stderr)
            return 2
        pf = greedy_batch(model.predict(x[..., None] / 255.0, verbose=0, batch_size=256))
        print(f"valid crops {len(x)}: float exact {np.mean([a == b for a, b in zip(pf, y)]):.3f}, "
              f"int8 exact {tflite_eval(Path(args.tflite), x, y)['exact']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
