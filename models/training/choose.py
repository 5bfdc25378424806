"""Measure reader candidates against the shipped models on the benchmark folders' *valid* split, and
apply the shipping rule written in models/README.md ("Choosing") before any candidate was measured.

    python -m models.training.choose CANDIDATE_DIR [CANDIDATE_DIR ...] [--baseline models] [--json]

Each CANDIDATE_DIR holds a reader.tflite (and reader.json) that a `train_reader --out DIR` run wrote;
a candidate without its own detector is read with the baseline's detector.tflite and detector.json,
so the reader alone is compared. Every set is measured by `unit.evaluate.evaluate(..., split="valid")`,
the code behind `alpr-unit eval DIR --split valid`: the train split, which the candidates learned
from, is never read here.

Exit status: 0 when some candidate passes the rule (the best one is named), 1 when none does, 2 when
the folders are unusable.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from models.training.realplates import BENCHMARK

ROOT = Path(__file__).resolve().parents[2]
SETS = {"us_photos": ("endtoend", "us"), "eu_photos": ("endtoend", "eu"), "br_photos": ("endtoend", "br"),
        "us_crops": ("crops", "us")}
MAX_MODELS_BYTES = 8_000_000       # both files together (issue 21's size target)


@dataclass
class Rule:
    """The shipping rule, as models/README.md states it (counts are exact reads on the valid split)."""
    us_photos_gain: int = 1        # US photos: at least this many more than the baseline
    us_crops_gain: int = 2         # US crops: at least this many more
    other_loss: int = 1            # EU and BR photos: at most this many fewer, each
    max_bytes: int = MAX_MODELS_BYTES


def measure(model_dir: Path, root: Path = BENCHMARK, threads: int = 1) -> dict:
    """Each valid set's exact reads (count and rate), top-5, plate found, CER and speed."""
    from unit.evaluate import evaluate
    out = {}
    for name, (kind, country) in SETS.items():
        r = evaluate(root / kind / country, threads=threads, model_dir=model_dir, split="valid")
        out[name] = {"images": r["images"], "exact_n": round(r["exact"] * r["images"]), "exact": r["exact"],
                     "topn": r["topn"], "detected": r["detected"], "cer": r["cer"], "ms_median": r["ms_median"]}
    out["bytes"] = sum((model_dir / f).stat().st_size for f in ("detector.tflite", "reader.tflite"))
    out["reader_graph"] = graph(model_dir / "reader.tflite")
    return out


def graph(path: Path) -> list[list]:
    """The model's operators and their output shapes, in order: two files with the same graph cost the
    same per pass, whatever their weights (on a shared machine a timing cannot show that)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    it = Interpreter(model_path=str(path),
                     experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    it.allocate_tensors()
    shapes = {t["index"]: t["shape"].tolist() for t in it.get_tensor_details()}
    return [[op["op_name"], [shapes[i] for i in op["outputs"]]] for op in it._get_ops_details()]


def verdict(base: dict, cand: dict, rule: Rule = Rule()) -> list[str]:
    """The rule's failed clauses for a candidate (empty: it passes)."""
    fails = []
    d = lambda k: cand[k]["exact_n"] - base[k]["exact_n"]
    if d("us_photos") < rule.us_photos_gain:
        fails.append(f"US photos {d('us_photos'):+d} (needs >= +{rule.us_photos_gain})")
    if d("us_crops") < rule.us_crops_gain:
        fails.append(f"US crops {d('us_crops'):+d} (needs >= +{rule.us_crops_gain})")
    for k in ("eu_photos", "br_photos"):
        if d(k) < -rule.other_loss:
            fails.append(f"{k.split('_')[0].upper()} photos {d(k):+d} (at most -{rule.other_loss})")
    if (cand["us_photos"]["detected"] or 0) < (base["us_photos"]["detected"] or 0):
        fails.append("US plates found fell")
    if cand["bytes"] > rule.max_bytes:
        fails.append(f"models {cand['bytes']} bytes (> {rule.max_bytes})")
    if cand["reader_graph"] != base["reader_graph"]:
        fails.append("the reader's graph differs from the shipped one (its speed must then be measured)")
    return fails


def with_detector(candidate: Path, baseline: Path, scratch: Path) -> Path:
    """The candidate's folder, or a copy of it with the baseline's detector where it has none."""
    if not (candidate / "reader.tflite").is_file():
        raise FileNotFoundError(f"{candidate}: no reader.tflite")
    if (candidate / "detector.tflite").is_file():
        return candidate
    d = scratch / candidate.name
    d.mkdir(parents=True)
    for f in ("reader.tflite", "reader.json"):
        if (candidate / f).exists():
            shutil.copy(candidate / f, d / f)
    for f in ("detector.tflite", "detector.json"):
        shutil.copy(baseline / f, d / f)
    return d


def total(m: dict) -> int:
    return sum(m[k]["exact_n"] for k in SETS)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("candidates", type=Path, nargs="+", help="folders with a candidate reader.tflite")
    ap.add_argument("--baseline", type=Path, default=ROOT / "models", help="the shipped pair (default models/)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    from unit.evaluate import EvalInputError
    try:
        with tempfile.TemporaryDirectory() as scratch:
            base = measure(args.baseline, threads=args.threads)
            results = {}
            for c in args.candidates:
                m = measure(with_detector(c, args.baseline, Path(scratch)), threads=args.threads)
                results[str(c)] = {**m, "fails": verdict(base, m)}
    except (OSError, EvalInputError) as exc:
        print(f"choose: {exc}", file=sys.stderr)
        return 2
    passing = [c for c, m in results.items() if not m["fails"]]
    best = max(passing, key=lambda c: (total(results[c]), results[c]["us_crops"]["exact_n"])) if passing else None
    if args.json:
        drop = lambda m: {k: v for k, v in m.items() if k != "reader_graph"}
        print(json.dumps({"baseline": drop(base), "candidates": {c: drop(m) for c, m in results.items()},
                          "ship": best}, indent=2))
    else:
        rows = [("baseline " + str(args.baseline), base, [])] + [(c, m, m["fails"]) for c, m in results.items()]
        print(f"{'valid split, exact reads':<44} {'US photos':>10} {'found':>6} {'US crops':>9} {'EU':>6} {'BR':>6}")
        for name, m, fails in rows:
            print(f"{name[-44:]:<44} {m['us_photos']['exact_n']:>4}/{m['us_photos']['images']:<5} "
                  f"{100 * m['us_photos']['detected']:>5.1f}% {m['us_crops']['exact_n']:>3}/{m['us_crops']['images']:<5} "
                  f"{m['eu_photos']['exact_n']:>3}/{m['eu_photos']['images']:<2} {m['br_photos']['exact_n']:>3}/{m['br_photos']['images']:<2}"
                  + ("" if name.startswith("baseline") else ("  passes" if not fails else "  fails: " + "; ".join(fails))))
        print(f"ship: {best}" if best else "ship: none passes the rule")
    return 0 if best else 1


if __name__ == "__main__":
    sys.exit(main())
