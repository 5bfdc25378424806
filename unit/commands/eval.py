"""`alpr-unit eval DIR`: the options and the printed table of `unit.evaluate`."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from unit import evaluate as evaluating
from unit.evaluate import EvalInputError


def format_table(r: dict) -> str:
    pct = lambda v: "-" if v is None else f"{100 * v:.1f} %"
    rows = [("folder", r["folder"]), ("format", r["format"]), ("split", r.get("split") or "all files"),
            ("images", str(r["images"])),
            ("exact read (top-1)", pct(r["exact"])), (f"any of top-{r['top_n']}", pct(r["topn"])),
            ("plate found (IoU >= 0.3)", pct(r["detected"])), ("character error rate", pct(r["cer"])),
            ("ms per image, median", f"{r['ms_median']:.1f}"), ("ms per image, p90", f"{r['ms_p90']:.1f}"),
            ("threads", str(r["threads"])), ("reader passes per plate", str(r["framings"])),
            ("two-row plates", "read side by side" if r["two_row_plates"] else "read as one row"),
            ("detector score threshold", f"{r['score_threshold']:g}"), ("peak memory", f"{r['peak_rss_mb']} MB")]
    w = max(len(k) for k, _ in rows)
    lines = [f"{k:<{w}}  {v}" for k, v in rows]
    for e in r["unreadable"]:
        lines.append(f"unreadable: {e}")
    return "\n".join(lines)


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("eval", help="measure recognition on a labelled folder",
                       description=evaluating.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", type=Path, help="end-to-end (NAME.jpg + NAME.txt) or crops (groundtruth.csv) folder")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--threads", type=int, default=1, help="inference threads (default 1)")
    p.add_argument("--top-n", type=int, default=5, help="candidates per read counted in the top-N rate")
    p.add_argument("--models", type=Path, default=None, help="folder with detector.tflite and reader.tflite")
    p.add_argument("--misreads", action="store_true", help="also list every wrong read")
    p.add_argument("--framings", type=int, choices=(1, 2), default=2,
                   help="reader passes per plate, as the unit's recognition.framings (default 2)")
    p.add_argument("--split", choices=evaluating.SPLITS, default=None,
                   help="only the files of this split of a folder split by a hash of their names, as the "
                        "benchmark folders are for training and choosing (default: every file)")
    p.add_argument("--one-row", action="store_true",
                   help="read every plate as one row, as a unit with recognition.two_row_plates = false")
    return p


def run(args: argparse.Namespace) -> int:
    from unit.litert import ModelError
    say = (lambda m: print(m, file=sys.stderr, flush=True)) if not args.json else None
    try:
        r = evaluating.evaluate(args.folder, threads=args.threads, top_n=args.top_n, model_dir=args.models,
                                progress=say, framings=args.framings, two_row=not args.one_row,
                                split=args.split)
    except EvalInputError as exc:
        print(f"alpr-unit eval: {exc}", file=sys.stderr)
        return 2
    except ModelError as exc:
        print(f"alpr-unit eval: {exc}", file=sys.stderr)
        return 1
    for e in r["unreadable"]:
        print(f"alpr-unit eval: unreadable image {e}", file=sys.stderr)
    if args.json:
        if not args.misreads:
            r.pop("misreads")
        print(json.dumps(r))
    else:
        print(format_table(r))
        if args.misreads:
            for m in r["misreads"]:
                print(f"misread {m['image']}: truth {m['truth']} read {m['read'] or '-'}")
    return 0
