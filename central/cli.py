"""`alpr-central`: make keys and database, serve the API, manage units and the hot list; the policy
commands (users, training, audit, retention, holds, evidence, agencies, schedule, config) are in
`central.cli_policy`.

Exit codes: 0 done, 1 the work ran but failed (e.g. no such unit, database unreachable),
2 bad usage or bad input. Commands that machines read take --json.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from central import cli_policy, db, db_roles, hotlist, units
from central.clock import parse_time
from central.config import Limits, load_settings, resolve_db, resolve_home, resolve_serve_db, save_db, save_serve_db
from central.errors import ApiError
from central.initialised import NotInitialised, check_keys, engine_for
from central.purposes import PURPOSES
from central.keys import ensure_keys, load_keys
from wire.times import iso


def _common() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--home", help="folder with keys/ and central.json (default $ALPR_CENTRAL_HOME or ./alpr-central)")
    p.add_argument("--db", help="database URL: sqlite:///path or postgresql://user@host/db "
                                "(default $ALPR_CENTRAL_DB, then the one chosen at init, then HOME/central.db)")
    return p


def _out(args: argparse.Namespace, data: Any, text: str) -> None:
    print(json.dumps(data, indent=2) if getattr(args, "json", False) else text)


def _engine(args: argparse.Namespace) -> sa.Engine:
    return cli_policy.signed_engine(args)


def cmd_init(args: argparse.Namespace) -> int:
    home = resolve_home(args.home)
    url = resolve_db(home, args.db)
    home.mkdir(parents=True, exist_ok=True, mode=0o700)      # the SQLite file holds plates
    keys, made = ensure_keys(home / "keys")
    engine = db.make_engine(url)
    try:
        db.upgrade(engine)
        serve_role = db_roles.grant_serving(engine, args.serve_url) if args.serve_url else None
    finally:
        engine.dispose()
    save_db(home, url)
    if args.serve_url:
        save_serve_db(home, args.serve_url)
    _out(args, {"home": str(home), "db": url, "keys_made": made, "sealing_key_id": keys.sealing_key_id,
                "sealing_public_key": keys.sealing_public_b64, "signing_public_key": keys.signing_public_b64,
                "serve_role": serve_role},
         f"home {home}\ndatabase {url} at revision {db.head_revision()}\n"
         f"keys {'made' if made else 'kept'}: sealing {keys.sealing_key_id}"
         + (f"\nserving role {serve_role}: SELECT and INSERT only on audit_log; `serve` connects as it"
            if serve_role else ""))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn
    home = resolve_home(args.home)
    limits = Limits(max_batch_reads=args.max_batch, max_body_bytes=args.max_body, rate_per_s=args.rate,
                    rate_burst=args.burst, replay_window_s=args.replay_window)
    check_keys(args.home)
    engine_for(args.home, args.db).dispose()
    load_keys(home / "keys")                       # fail here, clearly, rather than in each worker
    settings = load_settings(home)
    if not settings.audit_dir:                     # workers append signed audit heads here
        settings = dataclasses.replace(settings, audit_dir=str(home / "audit"))
    os.environ.update(ALPR_CENTRAL_HOME=str(home), ALPR_CENTRAL_DB=resolve_serve_db(home, args.db),
                      ALPR_CENTRAL_LIMITS=limits.to_json(), ALPR_CENTRAL_SETTINGS=settings.to_json())
    uvicorn.run("central.api:app_from_env", factory=True, host=args.host, port=args.port, workers=args.workers,
                log_level=args.log_level, access_log=args.access_log, server_header=False,
                timeout_graceful_shutdown=5,          # open live-alert streams must not hold a stop up
                ssl_certfile=args.tls_cert, ssl_keyfile=args.tls_key)
    return 0


def cmd_enroll_token(args: argparse.Namespace) -> int:
    """The token alone on stdout (TOKEN=$(alpr-central units enroll-token ...)); what it is, on stderr."""
    token, expires = units.make_token(_engine(args), args.site, timedelta(hours=args.ttl_hours))
    _out(args, {"token": token, "site": args.site, "expires_at": iso(expires)}, token)
    if not args.json:
        print(f"(site {args.site}, one use, expires {expires:%Y-%m-%d %H:%M} UTC)", file=sys.stderr)
    return 0


def cmd_units_list(args: argparse.Namespace) -> int:
    rows = units.list_units(_engine(args))
    text = "\n".join(f"{r['unit_id']:<24} {r['site']:<16} {r['status']:<8} last seen {r['last_seen_at'] or '-'}"
                     for r in rows) or "(no units)"
    _out(args, rows, text)
    return 0


def cmd_units_revoke(args: argparse.Namespace) -> int:
    if not units.revoke(_engine(args), args.unit_id):
        print(f"no unit {args.unit_id}", file=sys.stderr)
        return 1
    print(f"unit {args.unit_id} revoked")
    return 0


def cmd_hotlist_add(args: argparse.Namespace) -> int:
    by = cli_policy._by(args, "hotlist.manage")
    retro = load_settings(resolve_home(args.home)).hotlist_retro_days if args.retro_days is None else args.retro_days
    entry = hotlist.add(_engine(args), args.pattern, reason=args.reason, purpose=args.purpose, case_number=args.case,
                        source=args.source, note=args.note, by=by, retro_days=retro,
                        expires_at=parse_time(args.expires, end_of_day=True) if args.expires else None)
    _out(args, entry, f"added {entry['pattern']} (entry {entry['id']})"
         + (f"; {entry['retro_alerts']} alert(s) from the last {retro} days of reads" if retro else ""))
    return 0


def cmd_hotlist_import(args: argparse.Namespace) -> int:
    by = cli_policy._by(args, "hotlist.manage")
    retro = load_settings(resolve_home(args.home)).hotlist_retro_days
    with open(args.csv, encoding="utf-8") as f:
        result = hotlist.import_csv(_engine(args), f.read(), by, dry_run=args.dry_run, retro_days=retro)
    text = "\n".join([f"{'would add' if args.dry_run else 'added'} {len(result['added'])} entries"]
                     + [f"line {e['line']}: {e['error']}" for e in result["errors"]])
    _out(args, result, text)
    return 0 if not result["errors"] else 1


def cmd_hotlist_remove(args: argparse.Namespace) -> int:
    if not hotlist.remove(_engine(args), args.pattern):
        print(f"no entry {args.pattern}", file=sys.stderr)
        return 1
    print(f"removed {args.pattern.upper()}")
    return 0


def cmd_hotlist_list(args: argparse.Namespace) -> int:
    rows = hotlist.list_entries(_engine(args), args.all)
    _out(args, rows, "\n".join(f"{r['pattern']:<12} {r['reason']:<15} {r['note']:<30} {r['case_number'] or '-':<14} "
                               f"{r['source']:<12} by {r['entered_by']}, expires {r['expires_at'] or 'never'}"
                               f"{'' if r['active'] else ' (expired)'}" for r in rows) or "(empty)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="print JSON for machines")
    parser = argparse.ArgumentParser(prog="alpr-central", description="Central store for ALPR units.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("init", parents=[common, as_json], help="make the central keys and the database (idempotent)")
    p.add_argument("--serve-url", metavar="URL",
                   help="PostgreSQL: postgresql://ROLE:PASSWORD@host/db of the serving role; init (connected as "
                        "the owner, --db) creates the role if missing and grants it SELECT and INSERT only on "
                        "audit_log; `serve` then connects as it")
    p.set_defaults(run=cmd_init)

    p = sub.add_parser("serve", parents=[common], help="run the HTTP API (as the serving role saved by "
                       "init --serve-url, if any; --db overrides)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8443)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--max-batch", type=int, default=Limits.max_batch_reads, help="reads per request (413 past it)")
    p.add_argument("--max-body", type=int, default=Limits.max_body_bytes, help="bytes per request (413 past it)")
    p.add_argument("--rate", type=float, default=Limits.rate_per_s, help="requests/s per unit (429 past it)")
    p.add_argument("--burst", type=int, default=Limits.rate_burst)
    p.add_argument("--replay-window", type=float, default=Limits.replay_window_s, help="seconds")
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    p.add_argument("--log-level", default="info")
    p.add_argument("--access-log", action="store_true")
    p.set_defaults(run=cmd_serve)

    p_units = sub.add_parser("units", help="enrolment tokens, list, revoke")
    usub = p_units.add_subparsers(dest="units_command", metavar="ACTION", required=True)
    p = usub.add_parser("enroll-token", parents=[common, as_json], help="make a one-time, expiring enrolment token")
    p.add_argument("--site", required=True)
    p.add_argument("--ttl-hours", type=float, default=24.0)
    p.set_defaults(run=cmd_enroll_token)
    p = usub.add_parser("list", parents=[common, as_json], help="list enrolled units")
    p.set_defaults(run=cmd_units_list)
    p = usub.add_parser("revoke", parents=[common], help="refuse a unit's requests from now on")
    p.add_argument("unit_id")
    p.set_defaults(run=cmd_units_revoke)

    p_hot = sub.add_parser("hotlist", help="hot-list entries served to units")
    hsub = p_hot.add_subparsers(dest="hotlist_command", metavar="ACTION", required=True)
    p = hsub.add_parser("add", parents=[common, as_json],
                        help="add a plate or partial plate (? one character, * any run)")
    p.add_argument("pattern")
    p.add_argument("--reason", "--category", dest="reason", required=True, choices=list(hotlist.CATEGORIES),
                   help="why it is listed (the API, CSV and console call it reason; category is the same)")
    p.add_argument("--purpose", required=True, choices=list(PURPOSES), metavar="PURPOSE",
                   help="the policy purpose it is entered for: " + ", ".join(PURPOSES))
    p.add_argument("--case", required=True, help="case or incident number (its alerts are logged under it)")
    p.add_argument("--source", default="manual", help="where the entry came from")
    p.add_argument("--note", help="label units show (default: the reason's words)")
    p.add_argument("--expires", help="YYYY-MM-DD (end of day) or ISO-8601")
    p.add_argument("--retro-days", type=int, help="also check this many days of past reads "
                   "(default: the hotlist_retro_days setting)")
    p.add_argument("--by", help="USERNAME of the person entering it (password from $ALPR_CENTRAL_PASSWORD or "
                   "asked; default: recorded as cli:<login name>)")
    p.set_defaults(run=cmd_hotlist_add)
    p = hsub.add_parser("import", parents=[common, as_json], help="import CSV: plate,reason,purpose,case_number,"
                        "source[,expires][,note]; exit 1 if any line was refused")
    p.add_argument("csv")
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("--by", help="USERNAME of the person entering them (password from $ALPR_CENTRAL_PASSWORD or "
                   "asked; default: recorded as cli:<login name>)")
    p.set_defaults(run=cmd_hotlist_import)
    p = hsub.add_parser("remove", parents=[common], help="remove a plate")
    p.add_argument("pattern")
    p.set_defaults(run=cmd_hotlist_remove)
    p = hsub.add_parser("list", parents=[common, as_json], help="list entries")
    p.add_argument("--all", action="store_true", help="include expired entries")
    p.set_defaults(run=cmd_hotlist_list)
    cli_policy.add_commands(sub, common, as_json)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code = int(args.run(args) or 0)
        sys.stdout.flush()                         # a closed pipe shows here, inside the handlers below
        return code
    except ValueError as exc:                      # bad input caught below argparse: pattern, site, URL
        print(f"alpr-central: {exc}", file=sys.stderr)
        return 2
    except ApiError as exc:                        # refused: 400 is bad input, anything else a failure
        print(f"alpr-central: {exc}", file=sys.stderr)
        return 2 if exc.status == 400 else 1
    except (sa.exc.OperationalError, sa.exc.IntegrityError, FileNotFoundError) as exc:
        print(f"alpr-central: {type(exc).__name__}: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 1
    except NotInitialised as exc:
        print(f"alpr-central: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:                        # `| head -1` stopped reading: not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())      # no second one at exit
        return 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
