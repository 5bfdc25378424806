"""`alpr-unit`: the on-device command line.

Each subcommand lives in its own module and registers itself here through `add_parser(subparsers)`
and a `run(args) -> int` function, so this file stays a thin dispatcher.
Exit codes: 0 success, 1 the work ran but failed, 2 bad usage or bad input.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# subcommand name -> module that provides add_parser() and run()
COMMANDS = {
    "eval": "unit.evaluate",
    "run": "unit.service",
    "replay": "unit.replay",
    "status": "unit.status",
    "record-clip": "unit.record",
    "clip": "unit.clips",
    "update": "unit.commands.update",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="alpr-unit", description="Roadside licence-plate reader unit.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, modname in COMMANDS.items():
        mod = importlib.import_module(modname)
        p = mod.add_parser(sub)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
