"""`alpr-unit`: the on-device command line.

Each subcommand's argument parsing and output live in its own module (`unit/commands/`), which gives
`add_parser(subparsers)` and a `run(args) -> int` function, so this file stays a thin dispatcher; the
work itself is done by the unit's modules.
Exit codes: 0 success, 1 the work ran but failed, 2 bad usage or bad input.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# subcommand name -> module that provides add_parser() and run()
COMMANDS = {
    "eval": "unit.commands.eval",
    "run": "unit.commands.run",
    "replay": "unit.commands.replay",
    "status": "unit.commands.status",
    "record-clip": "unit.commands.record_clip",
    "clip": "unit.commands.clip",
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
