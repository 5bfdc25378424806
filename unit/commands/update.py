"""`alpr-unit update apply|status|verify|boot-check`: the command line of `unit.update`."""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from unit.layout import SERVICE, Layout, default_root
from unit.update import (DEFAULT_RESTART, ApplyOptions, BadUsage, UpdateError, apply, boot_check, pinned_release_key,
                         status, verify_bundle)


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("update", help="signed software updates into A/B slots (apply, status, verify)",
                       description="Signed software updates: verify a bundle against the pinned release key, "
                                   "install it into the inactive slot, switch, and roll back by itself "
                                   "if the service does not report healthy. See docs/firmware.md.")
    us = p.add_subparsers(dest="update_command", metavar="ACTION")
    us.required = True

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--root", type=Path, default=default_root(),
                       help="filesystem root holding etc/alpr-unit and opt/alpr (default / or $ALPR_ROOT)")
        q.add_argument("--json", action="store_true", help="machine-readable output")

    q = us.add_parser("apply", help="verify and install a bundle; roll back if the service is not healthy")
    q.add_argument("bundle", type=Path)
    q.add_argument("--allow-downgrade", action="store_true", help="install a version not newer than the running one")
    q.add_argument("--config", type=Path, help="the unit config (for its status file; default ROOT/etc/alpr-unit/config.toml)")
    q.add_argument("--restart-cmd", default=os.environ.get("ALPR_RESTART_CMD", DEFAULT_RESTART),
                   help=f"command that restarts the service (default: {DEFAULT_RESTART!r})")
    q.add_argument("--health-timeout", type=float, default=180.0,
                   help="seconds the new version has to report healthy (default 180)")
    common(q)
    q = us.add_parser("status", help="show both slots, which one runs, and the last update")
    q.add_argument("--verify", action="store_true", help="re-hash each slot's files against its signed manifest")
    common(q)
    q = us.add_parser("verify", help="check a bundle against the pinned release key without installing it")
    q.add_argument("bundle", type=Path)
    common(q)
    q = us.add_parser("boot-check", help="at boot: roll back an update that was never confirmed healthy")
    common(q)
    return p


def _print(args: argparse.Namespace, doc: dict[str, Any], text: str) -> None:
    print(json.dumps(doc, indent=1, default=str) if args.json else text)


def _render_status(st: dict[str, Any]) -> str:
    lines = [f"running slot: {st['current'] or 'none'}   release key: {st['release_key'] or 'NOT PINNED'}"]
    for name, s in st["slots"].items():
        mark = "*" if s["state"] == "active" else " "
        if s["state"] == "empty":
            lines.append(f"{mark} slot {name}: empty")
            continue
        integ = s.get("integrity")
        integ_txt = "" if integ is None else ("  files intact" if integ == "ok" else f"  DAMAGED: {'; '.join(integ[:3])}")
        lines.append(f"{mark} slot {name}: {s['state']:<8} version {s.get('version') or '?'}  installed "
                     f"{s.get('installed_at', '?')}  from {s.get('bundle', s.get('source', '?'))}{integ_txt}")
    lu = st.get("last_update")
    if lu:
        lines.append(f"last update: {lu.get('state')} {lu.get('from_version')} -> {lu.get('to_version')} "
                     f"(slot {lu.get('from')} -> {lu.get('to')}) at {lu.get('finished_at', lu.get('started_at'))}"
                     + (f"; {lu['health']}" if lu.get("health") else ""))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    layout = Layout(args.root)
    cmd = args.update_command
    try:
        if cmd == "status":
            st = status(layout, verify=args.verify)
            _print(args, st, _render_status(st))
            damaged = args.verify and any(isinstance(s.get("integrity"), list) for s in st["slots"].values()
                                          if s["state"] == "active")
            return 1 if damaged or st["current"] is None else 0
        if cmd == "verify":
            v = verify_bundle(args.bundle, pinned_release_key(layout))
            doc = {"result": "verified", "version": v.version, "files": len(v.manifest["files"]),
                   "signed_by": v.signature.get("key_id"), "sha256": v.sha256}
            _print(args, doc, f"{args.bundle.name}: good, version {v.version}, {doc['files']} files, "
                              f"signed by release key {doc['signed_by']}")
            return 0
        if cmd == "boot-check":
            res = boot_check(layout)
            _print(args, res, f"boot check: {res['result']}" + (f" ({res['detail']})" if res.get("detail") else ""))
            return 0
        opts = ApplyOptions(allow_downgrade=args.allow_downgrade, restart_cmd=tuple(shlex.split(args.restart_cmd)),
                            config=args.config, health_timeout=args.health_timeout)
        if os.geteuid() != 0 and layout.is_system:
            raise BadUsage("run as root: an update switches system files")
        say = (lambda m: print(m, file=sys.stderr)) if args.json else print
        res = apply(layout, args.bundle, opts, log=say)
        text = {"installed": f"updated to {res['version']} (slot {res['slot']}), healthy",
                "rolled_back": f"version {res['version']} did not become healthy ({res['health']}); rolled back "
                               f"to {res['previous_version']} (slot {res['previous_slot']}), which is running",
                "rollback_unhealthy": f"version {res['version']} did not become healthy; rolled back to slot "
                                      f"{res['previous_slot']}, but it is not healthy either "
                                      f"({res.get('rollback_health')}): see journalctl -u {SERVICE}",
                "failed": f"version {res['version']} did not become healthy and there is no previous slot"}
        _print(args, res, text[res["result"]])
        return 0 if res["result"] == "installed" else 1
    except BadUsage as exc:
        _print(args, {"result": "error", "error": str(exc)}, f"alpr-unit update: {exc}")
        return 2
    except UpdateError as exc:
        _print(args, {"result": "refused", "error": str(exc)}, f"alpr-unit update: {exc}")
        return 1
