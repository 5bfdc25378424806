"""`alpr-unit replay SOURCE --config FILE`: the options and the printed summary of `unit.replay`."""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace

from unit import logs
from unit import replay as replaying
from unit.commands.common import with_config
from unit.config import UnitConfig


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("replay", help="replay a clip or stills folder through the unit pipeline",
                       description=(replaying.__doc__ or "").split("\n\n")[1])
    p.add_argument("source", help="a clip folder (with clip.json) or a folder of still images")
    p.add_argument("--config", required=True, help="the unit's TOML config file")
    p.add_argument("--buffer", help="store sealed reads here instead of the config's buffer.path")
    p.add_argument("--realtime", action="store_true", help="pace the replay at its recorded speed")
    p.add_argument("--show-plates", action="store_true",
                   help="print the plates read (development only: plates are otherwise never shown)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    return p


@with_config
def run(args: argparse.Namespace, cfg: UnitConfig) -> int:
    if args.buffer:
        cfg = replace(cfg, buffer=replace(cfg.buffer, path=args.buffer))
    logs.setup(cfg.log.level, cfg.log.format)
    try:
        unit, reads = replaying.replay(cfg, args.source, realtime=args.realtime)
    except ValueError as exc:
        print(f"alpr-unit replay: {exc}", file=sys.stderr)
        return 2
    snap = unit.health.snapshot()
    summary = {
        "reads": len(reads), "counters": snap["counters"], "state": snap["state"], "problems": snap["problems"],
        "buffer": snap.get("buffer", {}), "buffer_path": cfg.buffer.path,
        "latency_ms": [round(r["latency_s"] * 1000, 1) for r in reads],
        "items": [{"read_id": r["read"].read_id, "lane": r["read"].lane, "captured_at": r["read"].captured_at,
                   "confidence": r["read"].confidence, **({"plate": r["read"].plate} if args.show_plates else {})}
                  for r in reads],
    }
    if args.json:
        print(json.dumps(summary, indent=1, default=str))
    else:
        for item in summary["items"]:
            print(f"{item['captured_at']}  {item['lane']:<10} {item['read_id']}  conf {item['confidence']:.2f}"
                  + (f"  {item['plate']}" if "plate" in item else ""))
        print(f"{len(reads)} reads sealed into {cfg.buffer.path}; state {snap['state']}"
              + ("; " + "; ".join(snap["problems"]) if snap["problems"] else ""))
    return 0 if snap["state"] == "ok" or reads else 1
