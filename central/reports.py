"""Audit reports (policy 462.5(c)): on demand (`alpr-central audit report`, GET /v1/audit/report)
and on a schedule (`central.schedule`).

For a period: accesses per user, searches and their purposes, hot-list alerts and their verification,
sharing decisions and who released the data, purges, failed logins, refused attempts, data access
granted (flagged when one person alone gave it), legal holds placed (flagged when broad), reads
whose capture time is implausible against their receipt, and the state of the audit chain with a
head signed by the store (`central.checkpoints`; a later `audit verify` checks the log against it).
Rendered as text for people, CSV (one flat table, a `section` column) for spreadsheets, or JSON.
"""
from __future__ import annotations

import csv
import io
import json
from collections import Counter, defaultdict
from datetime import datetime
from typing import Any

from pathlib import Path

import sqlalchemy as sa

from central import audit, capture_times, checkpoints
from central.config import Settings
from central.keys import CentralKeys
from central.roles import SWORN
from central.schema import alerts, audit_log, retention_runs
from central.sharing import list_requests
from wire.times import aware, iso

FORMATS = ("text", "csv", "json")


def build(engine: sa.Engine, start: datetime, end: datetime, who: audit.Who, keys: CentralKeys | None = None,
          checkpoint_file: Path | None = None, settings: Settings | None = None,
          signed_at: datetime | None = None) -> dict[str, Any]:
    """Gather the report and log it (a report reads the access log: it is itself an access). With the
    store's keys, the chain is checked against the latest signed head in `checkpoint_file` and, if
    intact, its head is signed into the report and appended to that file."""
    if start > end:
        raise ValueError("from is after to")
    in_range = sa.and_(audit_log.c.at >= start, audit_log.c.at <= end)
    with engine.begin() as conn:
        log = conn.execute(sa.select(audit_log).where(in_range).order_by(audit_log.c.id)).all()
        raised = conn.execute(sa.select(alerts).where(alerts.c.raised_at >= start, alerts.c.raised_at <= end)
                              .order_by(alerts.c.id)).all()
        runs = conn.execute(sa.select(retention_runs).where(retention_runs.c.started_at >= start,
                                                            retention_runs.c.started_at <= end)
                            .order_by(retention_runs.c.id)).all()
        people = conn.execute(sa.select(audit_log.c.username, audit_log.c.action, audit_log.c.query).where(
            audit_log.c.action.in_(("user_added", "password_set")))).all()
        audit.append(conn, who, "report", {"from": iso(start), "to": iso(end)}, result_count=len(log))
    if keys is not None:
        chain, signed = checkpoints.checkpoint(engine, keys, checkpoint_file, at=signed_at)
    else:
        chain, signed = audit.verify(engine), None

    per_user: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for e in log:
        if e.action in audit.ACCESS_ACTIONS:
            per_user[(e.username, e.agency)][e.action] += 1
    searches = [e for e in log if e.action == "search"]
    decided = [r for r in list_requests(engine) if _between(r["decided_at"], start, end)
               or _between(r["released_at"], start, end) or _between(r["received_at"], start, end)]
    return {
        "from": iso(start), "to": iso(end),
        "accesses_per_user": [{"username": u, "agency": a, "total": sum(c.values()), **dict(sorted(c.items()))}
                              for (u, a), c in sorted(per_user.items())],
        "search_purposes": dict(sorted(Counter(e.purpose for e in searches).items())),
        "searches": [{"at": iso(e.at), "username": e.username, "agency": e.agency, "purpose": e.purpose,
                      "case_number": e.case_number, "query": e.query, "result_count": e.result_count}
                     for e in searches],
        "alerts": {"raised": len(raised), **dict(Counter(a.status for a in raised)),
                   "list": [{"id": a.id, "raised_at": iso(a.raised_at), "pattern": a.pattern, "category": a.category,
                             "site": a.site, "status": a.status, "verified_by": a.verified_by,
                             "verified_at": iso(a.verified_at), "note": a.verification_note} for a in raised]},
        "sharing": decided,
        "purges": [{"id": r.id, "started_at": iso(r.started_at), "cutoff": iso(r.cutoff), "status": r.status,
                    "triggered_by": r.triggered_by, "reads_purged": r.reads_purged,
                    "images_purged": r.images_purged, "alerts_purged": r.alerts_purged, "held_kept": r.held_kept}
                   for r in runs],
        "failed_logins": [{"at": iso(e.at), "username": e.username, "action": e.action,
                           "reason": (e.query or {}).get("reason"), "client": (e.query or {}).get("client")}
                          for e in log if e.action in ("login_failed", "lockout")],
        "refusals": [{"at": iso(e.at), "username": e.username, "agency": e.agency,
                      "permission": (e.query or {}).get("permission"), "reason": (e.query or {}).get("reason"),
                      "where": _where(e.query or {})} for e in log if e.action == "refused"],
        "data_access_granted": _grants(log, people),
        "holds_placed": [{"at": iso(e.at), "username": e.username, "hold": (e.query or {}).get("hold"),
                          "case_number": e.case_number, "read_ids": (e.query or {}).get("read_ids"),
                          "filter": (e.query or {}).get("filter"), "read_count": e.result_count,
                          "broad": (e.query or {}).get("broad") or []}
                         for e in log if e.action == "hold_placed"],
        "capture_times": capture_times.implausible(engine, settings or Settings(), start, end),
        "audit_chain": chain.as_dict(),
        "signed_head": signed,
    }


def _decision(share: dict[str, Any]) -> str:
    """What the decider decided: a released request was approved (the release is someone's own act)."""
    return "approved" if share["status"] == "released" else share["status"]


def _where(query: dict[str, Any]) -> str:
    if query.get("command"):
        return str(query["command"])
    return f"{query.get('method', '')} {query.get('path', '')}".strip()


def _grants(log: list[Any], people: list[Any]) -> list[dict[str, Any]]:
    """Data access given in the period: an account made with a data role, a training record. Flagged
    when no second person was involved: whoever recorded the training also made the account or set its
    password (so could log in as it), recorded their own, or was not a named person (the command line)."""
    made_by: dict[str, set[str]] = defaultdict(set)
    for p in people:
        user = (p.query or {}).get("user")
        if user:
            made_by[user].add(p.username)
    out = []
    for e in log:
        q = e.query or {}
        if e.action == "user_added" and q.get("role") in SWORN:
            out.append({"at": iso(e.at), "by": e.username, "user": q.get("user"),
                        "what": f"account made with the {q.get('role')} role", "flag": None})
        elif e.action == "training_recorded":
            user = q.get("user")
            flag = None
            if e.username == user:
                flag = "recorded their own training"
            elif e.username.startswith("cli:") or e.agency == audit.SYSTEM_AGENCY:
                flag = "recorded from the command line, not by a named person"
            elif e.username in made_by.get(user, set()):
                flag = ("one person alone: the same person made the account or set its password and recorded "
                        "its training")
            out.append({"at": iso(e.at), "by": e.username, "user": user,
                        "what": f"training {q.get('course')} {q.get('completed')}..{q.get('expires')}", "flag": flag})
    return out


def _between(text: str | None, start: datetime, end: datetime) -> bool:
    if not text:
        return False
    moment = aware(datetime.fromisoformat(text.replace("Z", "+00:00")))
    return start <= moment <= end


def render(report: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(report, indent=2)
    if fmt == "csv":
        return _csv(report)
    if fmt == "text":
        return _text(report)
    raise ValueError(f"format: one of {', '.join(FORMATS)}")


def _text(r: dict[str, Any]) -> str:
    out = [f"ALPR audit report {r['from']} to {r['to']}", ""]
    chain = r["audit_chain"]
    out.append(f"Audit chain: {'intact' if chain['ok'] else 'BROKEN at entry ' + str(chain['bad_id']) + ': ' + str(chain['detail'])}"
               f", {chain['entries']} entries, head {chain['head_id']}:{chain['head_hash']}")
    signed = r.get("signed_head")
    out.append(f"Signed head: {signed['entries']} entries, head {signed['head_id']}:{signed['head_hash']} at "
               f"{signed['at']}, signature {signed['signature']}" if signed else
               "Signed head: none (the chain is broken, or the store's key was not at hand)")
    out += ["", "Accesses per user"]
    for u in r["accesses_per_user"]:
        detail = ", ".join(f"{k} {v}" for k, v in u.items() if k not in ("username", "agency", "total"))
        out.append(f"  {u['username']:<20} {u['agency']:<30} {u['total']:>6}  ({detail})")
    if not r["accesses_per_user"]:
        out.append("  (none)")
    out += ["", "Searches by purpose"]
    out += [f"  {p or '-':<30} {n:>6}" for p, n in r["search_purposes"].items()] or ["  (none)"]
    out += ["", "Searches"]
    for s in r["searches"]:
        q = s["query"] or {}
        out.append(f"  {s['at']} {s['username']:<16} {s['purpose']:<26} case {s['case_number']:<14} "
                   f"plate {q.get('plate') or '-'}{' (similar)' if q.get('similar') else ''} sites {','.join(q.get('sites') or []) or '-'} "
                   f"from {q.get('from') or '-'} to {q.get('to') or '-'} -> {s['result_count']}")
    a = r["alerts"]
    out += ["", f"Hot-list alerts: {a['raised']} raised, {a.get('unverified', 0)} unverified, "
                f"{a.get('confirmed', 0)} confirmed, {a.get('not_confirmed', 0)} not confirmed"]
    for x in a["list"]:
        out.append(f"  #{x['id']} {x['raised_at']} {x['pattern']:<10} {x['category']:<15} {x['site']:<12} "
                   f"{x['status']}" + (f" by {x['verified_by']} at {x['verified_at']}: {x['note']}" if x['verified_by'] else ""))
    out += ["", "Sharing requests and decisions"]
    for s in r["sharing"]:
        out.append(f"  #{s['id']} {s['agency']} ({s['requester_name']}, recorded by {s['recorded_by']}): "
                   f"{_decision(s)}"
                   + (f" by {s['decided_by']} at {s['decided_at']}: {s['decision_reason']}" if s["decided_by"] else "")
                   + (f"; released {s['released_count']} reads by {s['released_by']} at {s['released_at']}"
                      if s["released_at"] else ""))
    if not r["sharing"]:
        out.append("  (none)")
    out += ["", "Retention purges"]
    for p in r["purges"]:
        out.append(f"  run {p['id']} {p['started_at']} cutoff {p['cutoff']} {p['status']}: {p['reads_purged']} reads, "
                   f"{p['images_purged']} images, {p['alerts_purged']} alerts purged; {p['held_kept']} held kept")
    if not r["purges"]:
        out.append("  (none)")
    out += ["", "Failed logins and lock-outs"]
    out += [f"  {f['at']} {f['username']:<20} {f['action']:<12} {f['reason'] or ''}" for f in r["failed_logins"]] \
        or ["  (none)"]
    out += ["", "Refused attempts"]
    out += [f"  {x['at']} {x['username']:<20} {x['where']:<40} {x['reason']}" for x in r["refusals"]] or ["  (none)"]
    out += ["", "Data access granted"]
    out += [f"  {g['at']} {g['by']:<20} {g['user']:<20} {g['what']}" + (f"  FLAGGED: {g['flag']}" if g["flag"] else "")
            for g in r["data_access_granted"]] or ["  (none)"]
    out += ["", "Legal holds placed"]
    out += [f"  {h['at']} {h['username']:<20} hold {h['hold']} case {h['case_number']}: "
            + (f"{h['read_ids']} reads by id" if h["read_ids"] else "")
            + (f" filter {json.dumps(h['filter'], sort_keys=True)}" if h["filter"] else "")
            + (f" -> {h['read_count']} reads" if h["read_count"] is not None else "")
            + (f"  BROAD: {', '.join(h['broad'])}" if h["broad"] else "") for h in r["holds_placed"]] or ["  (none)"]
    c = r["capture_times"]
    out += ["", f"Implausible capture times (reads received in the period): {c['count']}"]
    out += [f"  unit {u}: {n}" for u, n in c["per_unit"].items()]
    out += [f"  read {x['read_id']} unit {x['unit_id']} captured {x['captured_at']} received {x['received_at']}: "
            f"{x['why']}" for x in c["reads"][:50]]
    return "\n".join(out) + "\n"


def _csv(r: dict[str, Any]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["section", "at", "user", "agency", "item", "detail", "count"])
    chain = r["audit_chain"]
    w.writerow(["audit_chain", "", "", "", "ok" if chain["ok"] else "broken",
                f"head {chain['head_id']}:{chain['head_hash']}" + ("" if chain["ok"] else f"; {chain['detail']}"),
                chain["entries"]])
    if r.get("signed_head"):
        h = r["signed_head"]
        w.writerow(["signed_head", h["at"], "", "", f"head {h['head_id']}:{h['head_hash']}",
                    f"signature {h['signature']}", h["entries"]])
    for u in r["accesses_per_user"]:
        for k, v in u.items():
            if k not in ("username", "agency"):
                w.writerow(["access", "", u["username"], u["agency"], k, "", v])
    for p, n in r["search_purposes"].items():
        w.writerow(["search_purpose", "", "", "", p, "", n])
    for s in r["searches"]:
        w.writerow(["search", s["at"], s["username"], s["agency"], s["purpose"],
                    f"case {s['case_number']}; query {json.dumps(s['query'], sort_keys=True)}", s["result_count"]])
    for x in r["alerts"]["list"]:
        w.writerow(["alert", x["raised_at"], x["verified_by"] or "", "", f"{x['pattern']} {x['category']}",
                    f"{x['status']}" + (f" at {x['verified_at']}: {x['note']}" if x["verified_at"] else ""), 1])
    for s in r["sharing"]:
        w.writerow(["sharing", s["decided_at"] or s["received_at"], s["decided_by"] or "", s["agency"],
                    f"request {s['id']} {_decision(s)}", s["decision_reason"] or "", s["released_count"] or 0])
        if s["released_at"]:
            w.writerow(["sharing_release", s["released_at"], s["released_by"], s["agency"],
                        f"request {s['id']} released", "", s["released_count"] or 0])
    for p in r["purges"]:
        w.writerow(["purge", p["started_at"], p["triggered_by"], "", f"run {p['id']} {p['status']}",
                    f"cutoff {p['cutoff']}; images {p['images_purged']}; alerts {p['alerts_purged']}; "
                    f"held kept {p['held_kept']}", p["reads_purged"]])
    for f in r["failed_logins"]:
        w.writerow(["failed_login", f["at"], f["username"], "", f["action"], f["reason"] or "", 1])
    for x in r["refusals"]:
        w.writerow(["refused", x["at"], x["username"], x["agency"], x["where"], x["reason"] or "", 1])
    for g in r["data_access_granted"]:
        w.writerow(["data_access", g["at"], g["by"], "", f"{g['user']}: {g['what']}",
                    f"FLAGGED: {g['flag']}" if g["flag"] else "", 1])
    for h in r["holds_placed"]:
        w.writerow(["hold", h["at"], h["username"], "", f"hold {h['hold']} case {h['case_number']}",
                    ("BROAD: " + ", ".join(h["broad"]) + "; " if h["broad"] else "")
                    + f"filter {json.dumps(h['filter'], sort_keys=True)}", h["read_count"] if h["read_count"] is not None else ""])
    for x in r["capture_times"]["reads"]:
        w.writerow(["capture_time", x["received_at"], "", x["unit_id"], f"read {x['read_id']}",
                    f"captured {x['captured_at']}: {x['why']}", 1])
    return buf.getvalue()
