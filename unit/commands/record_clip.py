"""`alpr-unit record-clip --seconds N OUT --config FILE`: the options and the result of `unit.record`."""
from __future__ import annotations

import argparse
import sys

from unit import record as recording
from unit.commands.common import with_config
from unit.config import UnitConfig


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("record-clip", help="record camera frames and sensor edges into a clip folder",
                       description=(recording.__doc__ or "").split("\n\n")[1])
    p.add_argument("out", help="new folder for the clip")
    p.add_argument("--seconds", type=float, required=True, help="how long to record")
    p.add_argument("--config", required=True, help="the unit's TOML config file (camera, lanes, pins)")
    p.add_argument("--quality", type=int, default=85, help="JPEG quality of the frames (default 85)")
    p.add_argument("--note", default="", help="a note kept in clip.json (weather, what was staged)")
    return p


@with_config
def run(args: argparse.Namespace, cfg: UnitConfig) -> int:
    if not 0 < args.seconds <= 3600 or not 1 <= args.quality <= 100:
        print("alpr-unit record-clip: --seconds must be within 0..3600 and --quality 1..100", file=sys.stderr)
        return 2
    try:
        clip = recording.record(cfg, args.out, args.seconds, quality=args.quality, note=args.note)
    except (FileExistsError, ValueError) as exc:
        print(f"alpr-unit record-clip: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:          # the camera would not open (busy: is the service running?)
        print(f"alpr-unit record-clip: {type(exc).__name__}: {exc} "
              "(is `alpr-unit run` holding the camera? stop the service first)", file=sys.stderr)
        return 1
    print(f"{clip.path}: {len(clip.frames)} frames, {len(clip.edges)} sensor edges, "
          f"{clip.capture.get('frames_dropped', 0)} frames dropped")
    for p in clip.capture.get("problems", []):
        print(f"  problem: {p}")
    print(f"next: alpr-unit clip label {clip.path}")
    return 0 if clip.frames else 1
