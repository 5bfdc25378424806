"""`alpr-unit replay SOURCE --config FILE`: a clip or a folder of stills through the real pipeline.

Runs anywhere: pins come from gpiozero's MockFactory and the replay drives them at the recorded edge
times, so the sensor code, the bursts, recognition, voting, sealing and the buffer are the ones a unit
runs. Times follow the recording (a manual clock), and nothing is dropped for backlog, so a replay gives
the same reads every time. Reads go sealed into the config's buffer (or `--buffer`); nothing is sent
to a central store (the HIL harness, `python -m hil run`, does that). Clips are read in the format of
`unit.clips` (docs/hil.md), older clips and folders of stills as before.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from typing import Any

from unit import logs
from unit.camera import ManualClock
from unit.clips import ClipSource
from unit.config import UnitConfig
from unit.service import Unit, load_or_exit


def replay(cfg: UnitConfig, source: str, realtime: bool = False, timeout: float = 3600.0,
           recogniser_factory: Any = None) -> tuple[Unit, list[dict[str, Any]]]:
    """Replay `source` through a Unit built from `cfg`; returns the (stopped) unit and one dict per read."""
    from gpiozero import Device
    from gpiozero.pins.mock import MockFactory

    previous = Device.pin_factory
    Device.pin_factory = MockFactory()
    clock = ManualClock(time.time())
    lane = next((lc.name for lc in cfg.lanes if lc.sensor.kind != "none"), cfg.lanes[0].name)
    # stills are separate vehicles: space them beyond the dedup window so none is taken for a repeat
    src = ClipSource(source, cfg.camera, lane, clock=clock, realtime=realtime, gap_s=cfg.dedup.window_s + 1.0)
    unit = Unit(cfg, src, clock=clock, live=False, recogniser_factory=recogniser_factory, env={})
    out: list[dict[str, Any]] = []
    unit.stage.listeners.append(lambda read, info: out.append({"read": read, **info}))
    try:
        unit.start()
        unit.wait_ended(timeout)
    finally:
        unit.stop()
        Device.pin_factory.reset()
        Device.pin_factory = previous
    return unit, out


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("replay", help="replay a clip or stills folder through the unit pipeline",
                       description=__doc__.split("\n\n")[1] if __doc__ else None)
    p.add_argument("source", help="a clip folder (with clip.json) or a folder of still images")
    p.add_argument("--config", required=True, help="the unit's TOML config file")
    p.add_argument("--buffer", help="store sealed reads here instead of the config's buffer.path")
    p.add_argument("--realtime", action="store_true", help="pace the replay at its recorded speed")
    p.add_argument("--show-plates", action="store_true",
                   help="print the plates read (development only: plates are otherwise never shown)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    return p


def run(args: argparse.Namespace) -> int:
    cfg = load_or_exit(args.config)
    if cfg is None:
        return 2
    if args.buffer:
        cfg = replace(cfg, buffer=replace(cfg.buffer, path=args.buffer))
    logs.setup(cfg.log.level, cfg.log.format)
    try:
        unit, reads = replay(cfg, args.source, realtime=args.realtime)
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
