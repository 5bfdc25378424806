"""`alpr-unit clip show|label`: check and summarise a recorded clip, or label the vehicles in it."""
from __future__ import annotations

import argparse
import json
import sys

from unit.clips import TRUTH_FILE, Clip, ClipError, Vehicle, label, load, normalise_plate, summary
from wire.read import PLATE_RE


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("clip", help="inspect a recorded clip, or label the vehicles in it",
                       description="Recorded clips (see docs/hil.md): `show` checks and summarises one, "
                                   "`label` fills in truth.json, the vehicles expected.")
    csub = p.add_subparsers(dest="clip_command", metavar="ACTION", required=True)
    s = csub.add_parser("show", help="check a clip and print what is in it")
    s.add_argument("clip")
    s.add_argument("--json", action="store_true")
    s.set_defaults(clip_run=_cmd_show)
    lab = csub.add_parser(
        "label", help="write truth.json: the plate of each vehicle",
        description="Without options, asks for the plate of each vehicle the sensors saw (a frame from "
                    "its passage is named so you can look). --plates gives them in order instead; --add "
                    "adds a vehicle the sensors missed. Plates are normalised to A-Z0-9.")
    lab.add_argument("clip")
    lab.add_argument("--plates", help="comma-separated plates, one per sensed vehicle in time order "
                                      "('-' skips one that was not a vehicle)")
    lab.add_argument("--add", action="append", default=[], metavar="PLATE@LANE@T",
                     help="add a vehicle: plate, lane and seconds from the start (repeatable)")
    lab.add_argument("--clear", action="store_true", help="forget the vehicles labelled so far first")
    lab.add_argument("--tolerance", type=float, help="seconds a read may be from a vehicle's time (default 2)")
    lab.add_argument("--by", default="", help="who labelled it (kept in truth.json)")
    lab.set_defaults(clip_run=_cmd_label)
    return p


def run(args: argparse.Namespace) -> int:
    return args.clip_run(args)


def _cmd_show(args: argparse.Namespace) -> int:
    try:
        clip = load(args.clip)
    except ClipError as exc:
        print(f"alpr-unit clip: {exc}", file=sys.stderr)
        return 2
    s = summary(clip)
    if args.json:
        print(json.dumps(s, indent=1))
        return 0
    cap = clip.capture
    print(f"clip {clip.path} (format v{clip.version}): {s['frames']} frames ({s['files']} files), "
          f"{s['duration_s']} s, {s['edges']} sensor edges")
    if cap:
        res = cap.get("resolution")
        print(f"captured by {cap.get('unit_id', '?')} at {cap.get('site', '?')} {cap.get('recorded_at', '')}; "
              + (f"{res[0]}x{res[1]} " if res else "") + f"{cap.get('fps', '?')} fps, shutter "
              f"{cap.get('shutter_us', '?')} us, gain {cap.get('gain', '?')}")
    for p in s["presences"]:
        print(f"  sensed: lane {p['lane']} from {p['start']:.2f} s to "
              + ("the end" if p["end"] is None else f"{p['end']:.2f} s"))
    if clip.truth.labelled:
        for v in clip.truth.vehicles:
            print(f"  vehicle: {v.plate} lane {v.lane} at {v.t:.2f} s" + (f" ({v.note})" if v.note else ""))
    else:
        print("  not labelled yet: alpr-unit clip label " + str(clip.path))
    return 0


def _parse_add(text: str) -> Vehicle:
    parts = text.split("@")
    if len(parts) != 3:
        raise ValueError(f"--add {text!r}: expected PLATE@LANE@SECONDS")
    plate = normalise_plate(parts[0])
    if not PLATE_RE.match(plate):
        raise ValueError(f"--add {text!r}: plate must have 1-10 letters or digits")
    try:
        t = float(parts[2])
    except ValueError:
        raise ValueError(f"--add {text!r}: time must be seconds from the start") from None
    return Vehicle(plate, parts[1], t)


def _cmd_label(args: argparse.Namespace) -> int:
    try:
        clip = load(args.clip)
        add = [_parse_add(a) for a in args.add]
        plates: list[str | None] | None = None
        if args.plates is not None:
            plates = [None if p.strip() in ("", "-") else p.strip() for p in args.plates.split(",")]
        elif not add and not args.clear:
            plates = _ask(clip)
        truth = label(clip, plates, add, args.clear, args.tolerance, args.by)
    except (ClipError, ValueError) as exc:
        print(f"alpr-unit clip label: {exc}", file=sys.stderr)
        return 2
    except (EOFError, KeyboardInterrupt):
        print("\nalpr-unit clip label: stopped; truth.json left as it was", file=sys.stderr)
        return 1
    print(f"{clip.path / TRUTH_FILE}: {len(truth.vehicles)} vehicles")
    for v in truth.vehicles:
        print(f"  {v.plate} lane {v.lane} at {v.t:.2f} s")
    return 0


def _ask(clip: Clip) -> list[str | None]:
    pres = clip.presences()
    if not pres:
        raise ValueError("the sensors saw no vehicle in this clip; use --add PLATE@LANE@T")
    print(f"{len(pres)} vehicles sensed in {clip.path}. Type each plate (letters and digits), "
          "'-' if it was not a vehicle.")
    out: list[str | None] = []
    for i, (lane, start, end) in enumerate(pres, 1):
        # a frame a little after the edge shows the vehicle at the gate
        f = clip.frame_at(start + 0.3 if end is None else min(start + 0.3, end))
        where = f" (look at {clip.path / f.file})" if f else ""
        answer = input(f"vehicle {i}: lane {lane} at {start:.2f} s{where}: ").strip()
        out.append(None if answer in ("", "-") else answer)
    return out
