"""Average the weights of readers fine-tuned from the same start (a "model soup"), for `--export`.

    python -m models.training.soup OUT RUN_A RUN_B [RUN_C ...]
    python -m models.training.train_reader --export OUT --out DIR --seed 6

Each RUN is a folder a `train_reader` run wrote (reader.tflite + reader.json). The int8 files are
dequantised (`train_reader.float_reader`), averaged weight by weight, and written as the plain weights and
training record that `train_reader --export` calibrates and exports. Runs fine-tuned from one model
stay in one basin, so their average reads at least about as well as each; runs from different
starts do not average into anything useful, and are refused.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np

CARD_ONLY = ("file", "bytes", "int8_synth_valid", "int8_pseudo_valid", "exported_from")


def soup(runs: list[Path], out: Path) -> dict:
    from models.training.train_reader import float_reader, save_weights_only
    cards = [json.loads((r / "reader.json").read_text()) for r in runs]
    starts = {c.get("init_sha256") for c in cards}
    if len(starts) != 1 or None in starts:
        raise ValueError(f"the runs started from different models (init_sha256 {sorted(map(str, starts))}): "
                         "a soup needs one common start")
    models = [float_reader(r / "reader.tflite")[0] for r in runs]
    weights = [m.get_weights() for m in models]
    models[0].set_weights([np.mean([w[i] for w in weights], axis=0) for i in range(len(weights[0]))])
    record = {k: v for k, v in cards[0].items() if k not in CARD_ONLY}
    record.update(folded=True, train_seconds=sum(c.get("train_seconds", 0) for c in cards),
                  samples="weights averaged over the runs in soup_of",
                  soup_of=[{"run": str(r), "sha256": hashlib.sha256((r / "reader.tflite").read_bytes()).hexdigest(),
                            **{k: c.get(k) for k in ("seed", "scene_variants", "synth_framing", "frames", "samples",
                                                     "train_seconds")}} for r, c in zip(runs, cards)])
    out.mkdir(parents=True, exist_ok=True)
    save_weights_only(models[0], out, record)
    return record


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path, help="folder for reader.weights.npz and reader-train.json")
    ap.add_argument("runs", type=Path, nargs="+", help="train_reader output folders (reader.tflite + reader.json)")
    args = ap.parse_args(argv)
    if len(args.runs) < 2:
        ap.error("a soup needs at least two runs")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        record = soup(args.runs, args.out)
    except (OSError, ValueError) as exc:
        print(f"soup: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(record["soup_of"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
