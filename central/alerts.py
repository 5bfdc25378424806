"""Hot-list alerts (policy 462.3(f)): raised at ingest, unverified until an officer records the
CLETS check.

Ingest calls `raise_for` inside the transaction that stores the reads, so a stored read that matches
an active entry always has its alert. Every alert carries NOTICE; its status stays `unverified` until
an officer records `confirmed` or `not_confirmed` with a note, once (the conditional UPDATE makes a
second, concurrent verification fail rather than overwrite the first). Viewing alerts is an access to
read data and is logged.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from central import audit, hotlist
from central.clock import utcnow
from central.errors import ApiError
from central.schema import alerts
from wire import patterns
from wire.times import iso

NOTICE = "UNVERIFIED: confirm through CLETS before any stop or detention based on this alert"
OUTCOMES = ("confirmed", "not_confirmed")
STATUSES = ("unverified", *OUTCOMES)
MAX_LIMIT = 500


def raise_for(conn: sa.Connection, stored: list[dict[str, Any]], now: datetime) -> int:
    """Match freshly stored read rows against the active hot list; insert one alert per match."""
    if not stored:
        return 0
    entries = [(e, patterns.to_regex(e.pattern)) for e in hotlist.active_entries(conn, now)]
    if not entries:
        return 0
    rows = [{"read_id": r["read_id"], "hotlist_entry_id": e.id, "pattern": e.pattern, "category": e.category,
             "plate": r["plate"], "site": r["site"], "captured_at": r["captured_at"], "raised_at": now,
             "status": "unverified"}
            for r in stored for e, rx in entries if rx.fullmatch(r["plate"])]
    if rows:
        conn.execute(alerts.insert(), rows)
    return len(rows)


def _doc(r: Any) -> dict[str, Any]:
    return {"id": r.id, "read_id": r.read_id, "hotlist_entry_id": r.hotlist_entry_id, "pattern": r.pattern,
            "category": r.category, "plate": r.plate, "site": r.site, "captured_at": iso(r.captured_at),
            "raised_at": iso(r.raised_at), "status": r.status, "notice": NOTICE,
            "verified_by": r.verified_by, "verified_at": iso(r.verified_at), "verification_note": r.verification_note}


def list_alerts(engine: sa.Engine, who: audit.Who, *, status: str | None = None, start: datetime | None = None,
                end: datetime | None = None, limit: int = 100, after_id: int | None = None) -> list[dict[str, Any]]:
    """Newest first; logged as an `alert_view` with the filters and the number shown."""
    if status and status not in STATUSES:
        raise ValueError(f"status: one of {', '.join(STATUSES)}")
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit: 1 to {MAX_LIMIT}")
    query = sa.select(alerts).order_by(alerts.c.id.desc()).limit(limit)
    if status:
        query = query.where(alerts.c.status == status)
    if start:
        query = query.where(alerts.c.raised_at >= start)
    if end:
        query = query.where(alerts.c.raised_at <= end)
    if after_id:
        query = query.where(alerts.c.id < after_id)
    with engine.begin() as conn:
        rows = conn.execute(query).all()
        audit.append(conn, who, "alert_view", {"status": status, "from": iso(start), "to": iso(end),
                                               "limit": limit, "before_id": after_id}, result_count=len(rows))
    return [_doc(r) for r in rows]


def get(engine: sa.Engine, who: audit.Who, alert_id: int) -> dict[str, Any]:
    with engine.begin() as conn:
        row = conn.execute(sa.select(alerts).where(alerts.c.id == alert_id)).first()
        audit.append(conn, who, "alert_view", {"alert": alert_id}, result_count=1 if row else 0)
    if row is None:
        raise ApiError(404, f"no alert {alert_id}")
    return _doc(row)


def verify(engine: sa.Engine, who: audit.Who, alert_id: int, outcome: str, note: str) -> dict[str, Any]:
    """Record the officer's CLETS check: once, with time and note."""
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome: one of {', '.join(OUTCOMES)}")
    note = (note or "").strip()
    if not note or len(note) > 1000:
        raise ValueError("note: required (what CLETS said), at most 1000 characters")
    now = utcnow()
    with engine.begin() as conn:
        done = conn.execute(alerts.update().where(alerts.c.id == alert_id, alerts.c.status == "unverified")
                            .values(status=outcome, verified_by=who.username, verified_at=now,
                                    verification_note=note)).rowcount
        row = conn.execute(sa.select(alerts).where(alerts.c.id == alert_id)).first()
        if done:
            audit.append(conn, who, "alert_verified", {"alert": alert_id, "outcome": outcome, "note": note},
                         result_count=1)
    if row is None:
        raise ApiError(404, f"no alert {alert_id}")
    if not done:
        raise ApiError(409, f"alert {alert_id} was already recorded as {row.status} by {row.verified_by} "
                            f"at {iso(row.verified_at)}")
    return _doc(row)
