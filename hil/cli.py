"""`python -m hil COMMAND`: the hardware-in-the-loop tools (docs/hil.md).

    python -m hil run [CLIPS...] [--realtime | --rtsp [--rtsp-bitrate KBPS]] [--json] [--check] [--config UNIT.toml]
                      [--central-url URL --central-home HOME [--db URL] --token TOKEN]
    python -m hil make-clips SRC OUT [--limit N]        # clips from photos in the benchmark format
    python -m hil build-demo [OUT]                      # rebuild hil/clips (needs ../shared and fonts)
    python -m hil sweep --set valid=CLIPS --set demo=hil/clips [--choose] [--real default]   # thresholds

`run` with no central store named starts its own (SQLite, in a temporary folder) and stops it after.
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from hil import make_clips
from unit import clips as clips_mod
from unit.cliargs import join_opaque

HERE = Path(__file__).resolve().parent
DEMO_CLIPS = HERE / "clips"


def _print_read(s: Any, run: Any) -> None:
    expected = run.expected(s)
    lat = run.latency(s)
    mark = ("ok " if expected == s.plate else "WRONG, expected " + expected) if expected else "not expected"
    print(f"  {time.strftime('%H:%M:%S', time.localtime(s.received_at))}  {run.clip.name:<22} lane {s.lane:<5} "
          f"{s.plate:<10} conf {s.confidence:.2f}  edge->stored "
          + ("   -   " if lat is None else f"{lat * 1000:5.0f} ms") + f"  {mark}", flush=True)


def add_run_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="replay clips through the unit service into a central store; report")
    p.add_argument("clips", nargs="*", help="clip folders, or folders of clips (default: hil/clips)")
    p.add_argument("--realtime", action="store_true", help="pace clips on the wall clock; the unit runs live")
    p.add_argument("--json", action="store_true", help="print the report as JSON (no per-read lines)")
    p.add_argument("--show-reads", action="store_true", help="print each read as it arrives at the store")
    p.add_argument("--plates", action="store_true", help="include plates in --json (test clips only)")
    p.add_argument("--check", action="store_true",
                   help="exit 1 unless every vehicle was read exactly once with no false reads")
    p.add_argument("--baseline", action="store_true",
                   help="also read each made clip's source photo with the recogniser alone, for comparison")
    p.add_argument("--rtsp", action="store_true",
                   help="serve each clip over RTSP (H.264, a real server on loopback) to an rtsp camera; real time")
    p.add_argument("--rtsp-bitrate", type=int, default=2048, help="with --rtsp: H.264 bit rate, kbit/s (default 2048)")
    p.add_argument("--config", help="a unit TOML to take settings from (lanes and camera source come from each clip)")
    p.add_argument("--central-url", help="a running central store (default: start one here)")
    p.add_argument("--central-home", help="its home folder (to find its database)")
    p.add_argument("--db", help="its database URL (default: the one its home names)")
    p.add_argument("--token", help="an enrolment token for the harness's unit (alpr-central units enroll-token)")
    p.add_argument("--unit-id", default="hil-unit-1")
    p.add_argument("--site", default="HIL", help="site for the enrolment token when the harness starts the store")
    p.add_argument("--workdir", help="where the unit's buffer and keys go (default: a temporary folder)")
    p.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    from hil.central import LocalCentral, enrol_unit
    from hil.harness import Harness, Options, load_base_config

    paths = clips_mod.find_clips(args.clips or [DEMO_CLIPS])
    if not paths:
        print(f"hil run: no clips (folders with {clips_mod.CLIP_FILE}) in {' '.join(args.clips) or DEMO_CLIPS}",
              file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    tmp = Path(tempfile.mkdtemp(prefix="alpr-hil-"))
    work = Path(args.workdir) if args.workdir else tmp
    central = None
    try:
        if args.central_url:
            if not (args.central_home or args.db) or not args.token:
                print("hil run: --central-url needs --central-home (or --db) and --token", file=sys.stderr)
                return 2
            url, token = args.central_url, args.token
            from central.config import resolve_db
            db_url = resolve_db(Path(args.central_home or ".").resolve(), args.db)
        else:
            central = LocalCentral(tmp / "central", db=args.db, log=tmp / "central.log").start()
            url, token, db_url = central.url, central.token(args.site), central.db_url
            if not args.json:
                print(f"central store (started for this run): {url}  home {central.home}")
        enrolment = enrol_unit(url, token, args.unit_id, work / "identity")
        opts = Options(realtime=args.realtime or args.rtsp, base_config=load_base_config(args.config),
                       baseline=args.baseline, workdir=work, camera="rtsp" if args.rtsp else "replay",
                       rtsp_args=("--bitrate", str(args.rtsp_bitrate)))
        show = args.show_reads and not args.json
        if not args.json:
            mode = "real time over RTSP" if args.rtsp else "real time" if args.realtime else "as fast as possible"
            print(f"{len(paths)} clips, {mode}, "
                  f"unit {enrolment.unit_id} (site {enrolment.site}) -> {url}", flush=True)
        report = Harness(enrolment, db_url, opts, on_read=_print_read if show else None).run(paths)
    finally:
        if central is not None:
            central.stop()
        shutil.rmtree(tmp, ignore_errors=True)        # --workdir, if given, is the caller's to keep
    if args.json:
        print(json.dumps(report.to_json(plates=args.plates), indent=1))
    else:
        print(report.table())
    if args.check and not report.every_vehicle_once:
        return 1
    return 0 if not report.total()["errors"] else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hil", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_run_parser(sub)
    make_clips.add_parser(sub)
    from hil import sweep
    sweep.add_parser(sub)
    p = sub.add_parser("build-demo", help="rebuild the committed demo clips (needs ../shared/data/train and fonts)")
    p.add_argument("out", nargs="?", default=str(DEMO_CLIPS))
    p.add_argument("--no-check", action="store_true", help="skip checking each vehicle with the shipped models")
    p.set_defaults(func=lambda a: __import__("hil.build_demo", fromlist=["run"]).run(a))
    # an enrolment token may start with "-" (unit.cliargs)
    args = parser.parse_args(join_opaque(list(sys.argv[1:] if argv is None else argv), ("--token",)))
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
