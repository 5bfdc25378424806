"""Audit reports (policy 462.5(c)): on demand (`alpr-central audit report`, GET /v1/audit/report)
and on a schedule (`central.schedule`).

For a period: accesses per user, searches and their purposes, hot-list alerts and their verification,
sharing decisions, purges, failed logins, and the state of the audit chain (its head id and hash, to
keep: a later `audit verify --expect ID:HASH` proves nothing before it was rewritten or cut off).
Rendered as text for people, CSV (one flat table, a `section` column) for spreadsheets, or JSON.
"""
from __future__ import annotations

import csv
import io
import json
from collections import Counter, defaultdict
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from central import audit
from central.schema import alerts, audit_log, retention_runs
from central.sharing import list_requests
from wire.times import aware, iso

FORMATS = ("text", "csv", "json")


def build(engine: sa.Engine, start: datetime, end: datetime, who: audit.Who) -> dict[str, Any]:
    """Gather the report and log it (a report reads the access log: it is itself an access)."""
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
        audit.append(conn, who, "report", {"from": iso(start), "to": iso(end)}, result_count=len(log))
    chain = audit.verify(engine)

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
        "audit_chain": chain.as_dict(),
    }


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
        out.append(f"  #{s['id']} {s['agency']} ({s['requester_name']}): {s['status']}"
                   + (f" by {s['decided_by']} at {s['decided_at']}: {s['decision_reason']}" if s["decided_by"] else "")
                   + (f"; released {s['released_count']} reads at {s['released_at']}" if s["released_at"] else ""))
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
    return "\n".join(out) + "\n"


def _csv(r: dict[str, Any]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["section", "at", "user", "agency", "item", "detail", "count"])
    chain = r["audit_chain"]
    w.writerow(["audit_chain", "", "", "", "ok" if chain["ok"] else "broken",
                f"head {chain['head_id']}:{chain['head_hash']}" + ("" if chain["ok"] else f"; {chain['detail']}"),
                chain["entries"]])
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
                    f"request {s['id']} {s['status']}", s["decision_reason"] or "", s["released_count"] or 0])
    for p in r["purges"]:
        w.writerow(["purge", p["started_at"], p["triggered_by"], "", f"run {p['id']} {p['status']}",
                    f"cutoff {p['cutoff']}; images {p['images_purged']}; alerts {p['alerts_purged']}; "
                    f"held kept {p['held_kept']}", p["reads_purged"]])
    for f in r["failed_logins"]:
        w.writerow(["failed_login", f["at"], f["username"], "", f["action"], f["reason"] or "", 1])
    return buf.getvalue()
