"""`alpr-provision`: the technician's tool, from a blank Pi to a unit pushing reads.

    alpr-provision init                                   # identity: Ed25519 key + unit id (root only)
    alpr-provision enroll --central URL --token TOKEN [--release-key release.pub]
    alpr-provision site --gate G3 --lane name=in,direction=in,sensor=loop,pin=17   (or -i)
    alpr-provision selftest [--json]
    alpr-provision aim

Every command takes `--root DIR` (default `/`, or $ALPR_ROOT) to work on a unit image mounted
elsewhere (and in tests). Exit codes: 0 done, 1 the step ran and failed or was refused (the message
says what to do), 2 bad usage or a missing earlier step. `--json` where a machine reads the output.
See docs/provisioning.md.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from provisioning.common import Refused, Usage, fail
from unit.cliargs import join_opaque
from unit.identity import IdentityError
from unit.layout import default_root

COMMANDS = {
    "init": "provisioning.identity",
    "enroll": "provisioning.enrol",
    "site": "provisioning.site",
    "selftest": "provisioning.selftest",
    "aim": "provisioning.aim",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="alpr-provision", description=__doc__.split("\n\n")[0],
                                     epilog="\n\n".join(__doc__.split("\n\n")[1:]),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    root = argparse.ArgumentParser(add_help=False)
    root.add_argument("--root", type=Path, default=default_root(),
                      help="filesystem root of the unit (default / or $ALPR_ROOT)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, modname in COMMANDS.items():
        mod = importlib.import_module(modname)
        p = mod.add_parser(sub)
        for action in root._actions:
            if action.dest == "root":
                p._add_action(action)
        p.set_defaults(_run=mod.run)
    return parser


OPAQUE = ("--token",)     # values that may start with "-" (a url-safe token can): never read as an option


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(join_opaque(list(sys.argv[1:] if argv is None else argv), OPAQUE))
    try:
        return int(args._run(args) or 0)
    except (Usage, IdentityError) as exc:
        return fail(args, str(exc), 2)
    except Refused as exc:
        return fail(args, str(exc), 1)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
