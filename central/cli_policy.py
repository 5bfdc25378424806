"""`alpr-central` commands for policy 462: users, training, audit, retention, holds, evidence,
agencies, schedule, config. Wired into `central.cli.build_parser`.

Who did it: a command acts either for a person, named with `--by USERNAME` and proven with that
person's password (from $ALPR_CENTRAL_PASSWORD, else asked at the terminal; checked like a login, with
its lock-out and audit entries), or, without `--by`, for the operating-system account that ran it,
recorded as `cli:<login name>` with the agency "ALPR central store" so no one mistakes it for a
person's act. Never as another user without proof. Commands that reach read data (holds, evidence
export) need `--by`, and the person's role and current training must allow it, checked exactly as
the API checks a session; a refusal is itself audited.
Exit codes as everywhere: 0 done, 1 ran but failed or refused, 2 bad usage or input.
"""
from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from central import (access, audit, checkpoints, evidence, holds, reports, retention, schedule, sessions, sharing,
                     training, users)
from central.clock import parse_time
from central.config import Settings, load_settings, resolve_home, save_settings
from central.initialised import engine_for
from central.keys import SIGNING_FILE, load_keys
from central.roles import ROLES
from central.search import selection_from
from central.units import parse_public_key


def _out(args: argparse.Namespace, data: Any, text: str) -> None:
    print(json.dumps(data, indent=2) if getattr(args, "json", False) else text)


PASSWORD_ENV = "ALPR_CENTRAL_PASSWORD"


def signed_engine(args: argparse.Namespace) -> sa.Engine:
    """The database of an initialised home (as its owner), with audit entries signed by the home's key."""
    engine = engine_for(args.home, args.db)
    keys = resolve_home(args.home) / "keys"
    if (keys / SIGNING_FILE).exists():
        audit.sign_with(engine, load_keys(keys))
    return engine


_engine = signed_engine


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(resolve_home(args.home))


def os_account() -> audit.Principal:
    """The operating-system account running the command, marked as the command line."""
    return audit.system(f"cli:{getpass.getuser()}")


def _person_password(username: str) -> str:
    if os.environ.get(PASSWORD_ENV):
        return os.environ[PASSWORD_ENV]
    if not sys.stdin.isatty():
        raise ValueError(f"--by {username}: give {username}'s password in ${PASSWORD_ENV} or run at a terminal; "
                         "without --by the command is recorded as the operating-system account")
    return getpass.getpass(f"password for {username}: ")


def authenticate(engine: sa.Engine, args: argparse.Namespace) -> sessions.Actor:
    """The person named by --by, proven by their password (a login: failures count towards lock-out
    and are audited); the session it opens is ended at once."""
    password = _person_password(args.by)
    token, _ = sessions.login(engine, _settings(args), args.by, password, client=f"cli:{getpass.getuser()}")
    sessions.logout(engine, token)
    return sessions.actor_for_user(engine, args.by)


def _by(args: argparse.Namespace, permission: str | None = None, engine: sa.Engine | None = None) -> audit.Who:
    """Who a record-changing command is recorded under: the authenticated --by person (whose role
    must allow `permission`), else the operating-system account."""
    if not args.by:
        return os_account()
    engine = engine or _engine(args)
    actor = authenticate(engine, args)
    return access.require(actor, permission, engine=engine, what=_command(args)) \
        if permission else actor


def _command(args: argparse.Namespace) -> dict[str, str]:
    """What was tried, for a refusal's audit entry: the command's name, never its options (a database
    URL may hold a password)."""
    action = getattr(args, f"{args.command}_command", None)
    return {"command": f"alpr-central {args.command}" + (f" {action}" if action else "")}


def _as_user(engine: sa.Engine, args: argparse.Namespace, permission: str) -> sessions.Actor:
    if not args.by:
        raise ValueError("--by USERNAME is required: name the person doing this (their password is checked)")
    return access.require(authenticate(engine, args), permission, engine=engine,
                          what=_command(args))


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: use YYYY-MM-DD") from None


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    if not sys.stdin.isatty():
        raise ValueError("no terminal to ask for the password: use --password-stdin")
    first = getpass.getpass("password: ")
    if first != getpass.getpass("again: "):
        raise ValueError("the passwords differ")
    return first


# -- users and training --------------------------------------------------------------------------
def cmd_users_add(args: argparse.Namespace) -> int:
    user = users.add(_engine(args), _settings(args), username=args.username, full_name=args.name,
                     job_title=args.title, agency=args.agency, role=args.role, password=_password(args),
                     by=_by(args, "users.manage"))
    _out(args, user.__dict__, f"added {user.username} ({ROLES[user.role]}, {user.job_title}, {user.agency})")
    return 0


def cmd_users_list(args: argparse.Namespace) -> int:
    rows = users.list_users(_engine(args), args.role)
    text = "\n".join(f"{u['username']:<16} {u['role']:<11} {u['status']:<9} {u['full_name']} - {u['job_title']}, "
                     f"{u['agency']}" + (f" (locked until {u['locked_until']})" if u["locked_until"] else "")
                     for u in rows) or "(no users)"
    _out(args, rows, text)
    return 0


def cmd_users_status(args: argparse.Namespace) -> int:
    engine = _engine(args)
    if args.action == "unlock":
        users.unlock(engine, args.username, _by(args, "users.manage", engine))
    else:
        users.set_status(engine, args.username, "disabled" if args.action == "disable" else "active",
                         _by(args, "users.manage", engine))
    print(f"{args.username}: {args.action}d" if args.action != "unlock" else f"{args.username}: unlocked")
    return 0


def cmd_users_passwd(args: argparse.Namespace) -> int:
    users.set_password(_engine(args), _settings(args), args.username, _password(args), _by(args, "users.manage"))
    print(f"{args.username}: password set")
    return 0


def cmd_training_record(args: argparse.Namespace) -> int:
    training.record(_engine(args), args.username, args.course, args.completed, args.expires,
                    _by(args, "users.manage"))
    print(f"{args.username}: {args.course} completed {args.completed}, expires {args.expires}")
    return 0


def cmd_training_list(args: argparse.Namespace) -> int:
    rows = training.list_records(_engine(args), args.username)
    _out(args, rows, "\n".join(f"{r['username']:<16} {r['course']:<40} {r['completed']} .. {r['expires']}"
                               f"{'  current' if r['current'] else ''}" for r in rows) or "(no records)")
    return 0


# -- audit ---------------------------------------------------------------------------------------
def _signing(args: argparse.Namespace) -> tuple[Any, Path]:
    """(the home's keys, the checkpoint file) for signing audit heads."""
    home = resolve_home(args.home)
    return load_keys(home / "keys"), _settings(args).checkpoint_file(home)


def cmd_audit_verify(args: argparse.Namespace) -> int:
    expect = None
    if args.expect:
        rid, _, digest = args.expect.partition(":")
        if not rid.isdigit() or len(digest) != 64:
            raise ValueError("--expect ID:HASH (the head a report or an earlier verify printed)")
        expect = (int(rid), digest)
    home = resolve_home(args.home)
    public = (parse_public_key(args.public_key) if args.public_key
              else load_keys(home / "keys").signing.public_key())
    cp_file = Path(args.checkpoints) if args.checkpoints else _settings(args).checkpoint_file(home)
    verdict = checkpoints.verify(_engine(args), public, cp_file, expect)
    signed = verdict.signed_head
    against = (f"; signed head {signed['head_id']} of {signed['at']} holds" if signed
               else f"; no signed head yet in {cp_file}")
    if verdict.ok:
        text = f"audit log intact: {verdict.entries} entries, head {verdict.head_id}:{verdict.head_hash}{against}"
    else:
        text = f"AUDIT LOG {verdict.problem.upper()} at entry {verdict.bad_id}: {verdict.detail}"
    _out(args, verdict.as_dict(), text)
    return 0 if verdict.ok else 1


def cmd_audit_checkpoint(args: argparse.Namespace) -> int:
    keys, cp_file = _signing(args)
    verdict, head = checkpoints.checkpoint(_engine(args), keys, cp_file)
    if head is None:
        _out(args, verdict.as_dict(), f"NOT SIGNED: audit log {verdict.problem} at entry {verdict.bad_id}: "
                                      f"{verdict.detail}")
        return 1
    _out(args, head, f"signed head {head['head_id']}:{head['head_hash']} ({head['entries']} entries) "
                     f"appended to {cp_file}")
    return 0


def cmd_audit_report(args: argparse.Namespace) -> int:
    start, end = parse_time(args.start), parse_time(args.end, end_of_day=True)
    built = reports.build(_engine(args), start, end, _by(args, "audit.read"), *_signing(args), _settings(args))
    body = reports.render(built, args.format)
    if args.out:
        Path(args.out).write_text(body)
        print(f"report written to {args.out}")
    else:
        sys.stdout.write(body)
    return 0


# -- retention, holds, evidence ------------------------------------------------------------------
def cmd_retention_run(args: argparse.Namespace) -> int:
    done = retention.run(_engine(args), _settings(args), _by(args, "retention.run"), dry_run=args.dry_run, batch=args.batch)
    if args.dry_run:
        text = (f"dry run: cutoff {done['cutoff']} ({done['retention_years']} years): {done['reads_due']} reads "
                f"would be purged, {done['held_kept']} held reads kept")
    else:
        text = (f"run {done['id']}: cutoff {done['cutoff']}: purged {done['reads_purged']} reads, "
                f"{done['images_purged']} images, {done['alerts_purged']} alerts; kept {done['held_kept']} held reads")
    _out(args, done, text)
    return 0


def cmd_retention_list(args: argparse.Namespace) -> int:
    rows = retention.list_runs(_engine(args))
    _out(args, rows, "\n".join(f"run {r['id']} {r['started_at']} {r['status']:<7} by {r['triggered_by']}: "
                               f"{r['reads_purged']} reads purged, {r['held_kept']} held kept" for r in rows)
         or "(no runs)")
    return 0


def cmd_holds_place(args: argparse.Namespace) -> int:
    engine = _engine(args)
    who = _as_user(engine, args, "holds.place")
    doc = {"plate": args.plate, "from": args.start, "to": args.end, "sites": args.site or []}
    selection = selection_from(doc) if any(doc.values()) else None
    hold = holds.place(engine, who, args.case, args.reason, read_ids=args.read_id or [], selection=selection)
    _out(args, hold, f"hold {hold['id']} placed for case {hold['case_number']}: {hold['read_count']} reads")
    return 0


def cmd_holds_release(args: argparse.Namespace) -> int:
    engine = _engine(args)
    hold = holds.release(engine, _as_user(engine, args, "holds.release"), args.hold_id, args.reason)
    _out(args, hold, f"hold {hold['id']} released by {hold['released_by']}")
    return 0


def cmd_holds_list(args: argparse.Namespace) -> int:
    rows = holds.list_holds(_engine(args), args.active)
    _out(args, rows, "\n".join(f"hold {h['id']:<5} case {h['case_number']:<16} {h['read_count']:>7} reads  "
                               f"{'active' if h['active'] else 'released by ' + h['released_by']}  "
                               f"placed by {h['placed_by']} at {h['placed_at']}" for h in rows) or "(no holds)")
    return 0


def cmd_evidence_export(args: argparse.Namespace) -> int:
    engine = _engine(args)
    who = _as_user(engine, args, "evidence.export")
    keys = load_keys(resolve_home(args.home) / "keys")
    done = evidence.export(engine, keys, who, args.hold_id, Path(args.dir))
    _out(args, done, f"exported {done['reads']} reads, {done['images']} images for case {done['case_number']} "
                     f"to {done['dir']} (manifest SHA-256 {done['manifest_sha256']})")
    return 0


def cmd_evidence_verify(args: argparse.Namespace) -> int:
    if args.public_key:
        key = parse_public_key(args.public_key)
    else:
        key = load_keys(resolve_home(args.home) / "keys").signing.public_key()
    result = evidence.verify(Path(args.dir), key)
    text = (f"intact: {result['files']} files, case {result['case_number']}, signature good" if result["ok"]
            else "EVIDENCE CHANGED:\n" + "\n".join(f"  {p}" for p in result["problems"]))
    _out(args, result, text)
    return 0 if result["ok"] else 1


# -- agencies, schedule, config ------------------------------------------------------------------
def cmd_agencies_add(args: argparse.Namespace) -> int:
    a = sharing.add_agency(_engine(args), _by(args, "agencies.manage"), args.name, args.kind, args.california_public,
                           args.agreement_signed, args.agreement_expires)
    _out(args, a, f"agency {a['id']} {a['name']} ({a['kind']}): {'eligible' if a['eligible'] else 'NOT eligible'}")
    return 0


def cmd_agencies_list(args: argparse.Namespace) -> int:
    rows = sharing.list_agencies(_engine(args))
    _out(args, rows, "\n".join(f"{a['id']:<4} {a['name']:<40} {a['kind']:<16} CA public {a['california_public']!s:<5} "
                               f"agreement {a['agreement_signed_on'] or '-'}..{a['agreement_expires_on'] or '-'}"
                               for a in rows) or "(no agencies)")
    return 0


def cmd_schedule(args: argparse.Namespace) -> int:
    home = resolve_home(args.home)
    engine = _engine(args)
    while True:
        done = schedule.run_due(engine, load_settings(home), home)
        if done:
            print(json.dumps(done), flush=True)
        if args.once:
            return 0
        time.sleep(args.interval)


def cmd_config_show(args: argparse.Namespace) -> int:
    s = _settings(args)
    _out(args, s.__dict__, "\n".join(f"{k} = {v}" for k, v in s.__dict__.items()))
    return 0


def cmd_config_set(args: argparse.Namespace) -> int:
    home = resolve_home(args.home)
    current = load_settings(home).__dict__.copy()
    for pair in args.pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in current:
            raise ValueError(f"{pair!r}: use KEY=VALUE with KEY one of {', '.join(current)}")
        current[key] = value
    settings = Settings.from_dict(current)
    save_settings(home, settings)
    print("saved; restart `alpr-central serve` to apply")
    return 0


def add_commands(sub: argparse._SubParsersAction, common: argparse.ArgumentParser,
                 as_json: argparse.ArgumentParser) -> None:
    by = argparse.ArgumentParser(add_help=False)
    by.add_argument("--by", metavar="USERNAME", help="the person doing this, proven by their password "
                    f"(${PASSWORD_ENV}, else asked); default: recorded as cli:<login name>")
    as_user = argparse.ArgumentParser(add_help=False)
    as_user.add_argument("--by", metavar="USERNAME", help="the person doing this (required): their password "
                         f"(${PASSWORD_ENV}, else asked), role and training are checked")
    password = argparse.ArgumentParser(add_help=False)
    password.add_argument("--password-stdin", action="store_true", help="read the password from standard input")

    def group(name: str, help_: str) -> argparse._SubParsersAction:
        p = sub.add_parser(name, help=help_)
        return p.add_subparsers(dest=f"{name}_command", metavar="ACTION", required=True)

    g = group("users", "people who use the store (policy 462.2.1(a))")
    p = g.add_parser("add", parents=[common, as_json, by, password], help="add a user")
    p.add_argument("username")
    p.add_argument("--name", required=True, help="full name")
    p.add_argument("--title", required=True, help="job title")
    p.add_argument("--agency", required=True)
    p.add_argument("--role", required=True, choices=list(ROLES))
    p.set_defaults(run=cmd_users_add)
    p = g.add_parser("list", parents=[common, as_json], help="list users")
    p.add_argument("--role", choices=list(ROLES))
    p.set_defaults(run=cmd_users_list)
    for action, help_ in (("disable", "disable a user (ends their sessions)"), ("enable", "enable a disabled user"),
                          ("unlock", "clear a lock-out")):
        p = g.add_parser(action, parents=[common, by], help=help_)
        p.add_argument("username")
        p.set_defaults(run=cmd_users_status, action=action)
    p = g.add_parser("passwd", parents=[common, by, password], help="set a user's password")
    p.add_argument("username")
    p.set_defaults(run=cmd_users_passwd)

    g = group("training", "training records (policy 462.3(d), 462.8)")
    p = g.add_parser("record", parents=[common, by], help="record completed training")
    p.add_argument("username")
    p.add_argument("--course", required=True)
    p.add_argument("--completed", required=True, type=_day, help="YYYY-MM-DD")
    p.add_argument("--expires", required=True, type=_day, help="YYYY-MM-DD")
    p.set_defaults(run=cmd_training_record)
    p = g.add_parser("list", parents=[common, as_json], help="list training records")
    p.add_argument("username", nargs="?")
    p.set_defaults(run=cmd_training_list)

    g = group("audit", "the access log (policy 462.5)")
    p = g.add_parser("verify", parents=[common, as_json], help="check the hash chain against the latest signed head; "
                     "exit 1 names an edited, deleted, forged entry or an emptied, cut, rewritten log")
    p.add_argument("--expect", metavar="ID:HASH", help="a head printed earlier, which must still be in the chain")
    p.add_argument("--checkpoints", metavar="FILE", help="signed heads (default: the audit_dir setting, else "
                   "HOME/audit/checkpoints.jsonl)")
    p.add_argument("--public-key", help="base64 Ed25519 signing key of the store (default: HOME/keys)")
    p.set_defaults(run=cmd_audit_verify)
    p = g.add_parser("checkpoint", parents=[common, as_json],
                     help="verify the chain, then sign its head and append it to the checkpoint file")
    p.set_defaults(run=cmd_audit_checkpoint)
    p = g.add_parser("report", parents=[common, by], help="audit report for a period (text, csv or json)")
    p.add_argument("--from", dest="start", required=True, help="YYYY-MM-DD or ISO-8601")
    p.add_argument("--to", dest="end", required=True, help="YYYY-MM-DD (inclusive) or ISO-8601")
    p.add_argument("--format", choices=reports.FORMATS, default="text")
    p.add_argument("--out", help="write to this file instead of standard output")
    p.set_defaults(run=cmd_audit_report)

    g = group("retention", "purge reads past the retention period (policy 462.4)")
    p = g.add_parser("run", parents=[common, as_json, by], help="purge now (held reads are kept)")
    p.add_argument("--dry-run", action="store_true", help="count only")
    p.add_argument("--batch", type=int, default=retention.BATCH, help="reads per transaction")
    p.set_defaults(run=cmd_retention_run)
    p = g.add_parser("list", parents=[common, as_json], help="past runs with counts")
    p.set_defaults(run=cmd_retention_list)

    g = group("holds", "legal holds (policy 462.4)")
    p = g.add_parser("place", parents=[common, as_json, as_user], help="hold reads for a case")
    p.add_argument("--case", required=True, help="case number")
    p.add_argument("--reason", required=True)
    p.add_argument("--read-id", action="append", help="a read to hold (repeat)")
    p.add_argument("--plate", help="hold every read of this plate or pattern ...")
    p.add_argument("--from", dest="start", help="... captured from (YYYY-MM-DD or ISO-8601)")
    p.add_argument("--to", dest="end", help="... to")
    p.add_argument("--site", action="append", help="... at this site (repeat)")
    p.set_defaults(run=cmd_holds_place)
    p = g.add_parser("release", parents=[common, as_json, as_user], help="release a hold")
    p.add_argument("hold_id", type=int)
    p.add_argument("--reason", required=True)
    p.set_defaults(run=cmd_holds_release)
    p = g.add_parser("list", parents=[common, as_json], help="list holds")
    p.add_argument("--active", action="store_true")
    p.set_defaults(run=cmd_holds_list)

    g = group("evidence", "evidence bundles for portable media (policy 462.4)")
    p = g.add_parser("export", parents=[common, as_json, as_user], help="write a held case to an empty folder")
    p.add_argument("hold_id", type=int)
    p.add_argument("dir")
    p.set_defaults(run=cmd_evidence_export)
    p = g.add_parser("verify", parents=[common, as_json], help="check a bundle; exit 1 lists every change")
    p.add_argument("dir")
    p.add_argument("--public-key", help="base64 Ed25519 signing key of the central store (default: HOME/keys)")
    p.set_defaults(run=cmd_evidence_verify)

    g = group("agencies", "agencies on file for sharing (policy 462.7)")
    p = g.add_parser("add", parents=[common, as_json, by], help="put an agency on file")
    p.add_argument("name")
    p.add_argument("--kind", required=True, choices=sharing.KINDS)
    p.add_argument("--california-public", action="store_true", help="a public agency in California")
    p.add_argument("--agreement-signed", type=_day)
    p.add_argument("--agreement-expires", type=_day)
    p.set_defaults(run=cmd_agencies_add)
    p = g.add_parser("list", parents=[common, as_json], help="list agencies")
    p.set_defaults(run=cmd_agencies_list)

    p = sub.add_parser("schedule", parents=[common], help="run what is due: daily retention, weekly audit report")
    p.add_argument("--once", action="store_true", help="run what is due now and exit (for cron or a systemd timer)")
    p.add_argument("--interval", type=float, default=3600.0, help="seconds between checks")
    p.set_defaults(run=cmd_schedule)

    g = group("config", "policy settings kept in HOME/central.json")
    p = g.add_parser("show", parents=[common, as_json], help="show the settings")
    p.set_defaults(run=cmd_config_show)
    p = g.add_parser("set", parents=[common], help="change settings: KEY=VALUE ...")
    p.add_argument("pairs", nargs="+", metavar="KEY=VALUE")
    p.set_defaults(run=cmd_config_set)
