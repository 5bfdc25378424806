"""`alpr-provision init`: the unit's identity - an Ed25519 key and a unit id - in a root-only folder.

The identity is made, kept and loaded by `unit.identity`; this is its command line. An existing identity
is never replaced without `--force`; a replaced key is kept beside the new one and the unit must be
enrolled again.
"""
from __future__ import annotations

import argparse

from provisioning.common import Refused, emit, layout
from unit.identity import IdentityConflict, create


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("init", help="make the unit's identity (Ed25519 key and unit id); never overwrites",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--unit-id", help="the unit's id, as the central store will know it "
                                     "(default alpr-<Pi serial>, or from the key off a Pi)")
    p.add_argument("--force", action="store_true", help="replace an existing identity (the unit must be enrolled again)")
    p.add_argument("--json", action="store_true")
    return p


def run(args: argparse.Namespace) -> int:
    lay = layout(args)
    try:
        res = create(lay, args.unit_id, args.force)
    except IdentityConflict as exc:
        raise Refused(str(exc)) from None
    if res["created"]:
        text = (f"identity made: unit {res['unit_id']}, key {res['key_id']} ({res['path']}, root only)"
                + (f"\nold key kept as {res['replaced']}; enroll again: alpr-provision enroll" if res.get("replaced") else "")
                + "\nnext: alpr-provision enroll --central URL --token TOKEN")
    else:
        text = (f"identity kept: unit {res['unit_id']}, key {res['key_id']} (made {res.get('created_at') or '?'}); "
                "use --force to replace it")
    emit(args, {"ok": True, **res}, text)
    return 0
