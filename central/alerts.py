"""Hot-list alerts (policy 462.3(f)): raised at ingest, unverified until an officer records the
CLETS check.

Ingest calls `raise_for` inside the transaction that stores the reads, so a stored read that matches
an active entry always has its alert; `retro_check` does the same for a new entry and the reads of the
last days. An alert copies what an officer needs at the roadside (plate, site, unit, lane, direction,
the entry's reason and note) and the purpose and case number of its entry, because viewing alerts is
an access to read data (Civil Code 1798.90.52): every view is logged under the purpose and case of the
entries whose alerts it showed, one entry per purpose and case.

An alert carries NOTICE while its status is `unverified`; an officer records `confirmed` or
`not_confirmed` (rejected) with a note, once (the conditional UPDATE makes a second, concurrent
verification fail rather than overwrite the first). A confirmed alert no longer carries the notice;
a rejected one carries REJECTED_NOTICE.
"""
from __future__ import annotations

import base64
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from central import audit, hotlist
from central.clock import utcnow
from central.errors import ApiError
from central.schema import alerts, hotlist_entries, read_images, reads
from wire import patterns
from wire.times import iso

NOTICE = "UNVERIFIED: confirm through CLETS before any stop or detention based on this alert"
REJECTED_NOTICE = "NOT CONFIRMED through CLETS: no stop or detention on this alert"
OUTCOMES = ("confirmed", "not_confirmed")
STATUSES = ("unverified", *OUTCOMES)
MAX_LIMIT = 500
MAX_RETRO = 1000                       # alerts one new entry may raise from past reads


def _alert_row(read: Any, entry: Any, now: datetime) -> dict[str, Any]:
    return {"read_id": read["read_id"], "hotlist_entry_id": entry.id, "pattern": entry.pattern,
            "category": entry.category, "note": entry.note, "purpose": entry.purpose,
            "case_number": entry.case_number, "plate": read["plate"], "site": read["site"],
            "unit_id": read["unit_id"], "lane": read["lane"], "direction": read["direction"],
            "captured_at": read["captured_at"], "raised_at": now, "status": "unverified"}


def raise_for(conn: sa.Connection, stored: list[dict[str, Any]], now: datetime) -> int:
    """Match freshly stored read rows against the active hot list; insert one alert per match."""
    if not stored:
        return 0
    entries = [(e, patterns.to_regex(e.pattern)) for e in hotlist.active_entries(conn, now)]
    if not entries:
        return 0
    rows = [_alert_row(r, e, now) for r in stored for e, rx in entries if rx.fullmatch(r["plate"])]
    if rows:
        conn.execute(alerts.insert(), rows)
    return len(rows)


def retro_check(conn: sa.Connection, entry_id: int, days: int, who: audit.Who, now: datetime) -> int:
    """Raise alerts for an entry from the reads of the last `days` days (not already alerted for it),
    at most MAX_RETRO, newest first; logged under the entry's purpose and case."""
    from central.search import Query, filters
    entry = conn.execute(sa.select(hotlist_entries).where(hotlist_entries.c.id == entry_id)).one()
    since = now - timedelta(days=days)
    alerted = sa.select(alerts.c.id).where(alerts.c.read_id == reads.c.read_id, alerts.c.hotlist_entry_id == entry_id)
    found = conn.execute(
        sa.select(reads.c.read_id, reads.c.plate, reads.c.site, reads.c.unit_id, reads.c.lane, reads.c.direction,
                  reads.c.captured_at)
        .where(*filters(Query(purpose="", case_number="", plate=entry.pattern, start=since)), ~sa.exists(alerted))
        .order_by(reads.c.captured_at.desc()).limit(MAX_RETRO)).mappings().all()
    if found:
        conn.execute(alerts.insert(), [_alert_row(r, entry, now) for r in found])
    audit.append(conn, who, "hotlist_retro_check", {"entry": entry_id, "pattern": entry.pattern, "days": days,
                                                    "from": iso(since)},
                 purpose=entry.purpose, case_number=entry.case_number, result_count=len(found))
    return len(found)


def clets_instruction(policy_file: Path) -> str:
    """The policy's own words on verifying an alert (462.3(f)), from the policy file the store serves."""
    text = policy_file.read_text("utf-8")
    start = text.find("(f) Officers shall verify")
    if start < 0:
        return "Verify an ALPR response through CLETS before initiating a stop or detention based solely on an alert."
    return " ".join(text[start + 4:text.find("\n", start)].split())


def notice(status: str) -> str | None:
    return {"unverified": NOTICE, "not_confirmed": REJECTED_NOTICE}.get(status)


def _doc(r: Any, images: dict[str, bytes] | None = None) -> dict[str, Any]:
    doc = {"id": r.id, "read_id": r.read_id, "status": r.status, "notice": notice(r.status),
           "plate": r.plate, "site": r.site, "unit_id": r.unit_id, "lane": r.lane, "direction": r.direction,
           "captured_at": iso(r.captured_at), "raised_at": iso(r.raised_at),
           "pattern": r.pattern, "reason": r.category, "category": r.category,
           "entry": {"id": r.hotlist_entry_id, "pattern": r.pattern, "reason": r.category,
                     "reason_text": hotlist.CATEGORIES.get(r.category, r.category), "note": r.note,
                     "purpose": r.purpose, "case_number": r.case_number},
           "verified_by": r.verified_by, "verified_at": iso(r.verified_at), "verification_note": r.verification_note}
    for kind, data in (images or {}).items():
        doc[f"{kind}_jpeg_b64"] = base64.b64encode(data).decode("ascii")
    return doc


def _log_views(conn: sa.Connection, who: audit.Who, rows: list[Any], query: dict[str, Any]) -> None:
    """One `alert_view` entry per purpose and case among the alerts shown (one with none if none were)."""
    groups: dict[tuple[str | None, str | None], list[int]] = defaultdict(list)
    for r in rows:
        groups[(r.purpose, r.case_number)].append(r.id)
    if not groups:
        audit.append(conn, who, "alert_view", query, result_count=0)
    for (purpose, case_number), ids in sorted(groups.items(), key=lambda kv: min(kv[1])):
        audit.append(conn, who, "alert_view", {**query, "alerts": ids}, purpose=purpose, case_number=case_number,
                     result_count=len(ids))


def _images(conn: sa.Connection, read_ids: list[str], kinds: tuple[str, ...]) -> dict[str, dict[str, bytes]]:
    out: dict[str, dict[str, bytes]] = defaultdict(dict)
    if read_ids:
        for rid, kind, jpeg in conn.execute(sa.select(read_images.c.read_id, read_images.c.kind, read_images.c.jpeg)
                                            .where(read_images.c.read_id.in_(read_ids),
                                                   read_images.c.kind.in_(kinds))):
            out[rid][kind] = jpeg
    return out


def list_alerts(engine: sa.Engine, who: audit.Who, *, status: str | None = None, start: datetime | None = None,
                end: datetime | None = None, limit: int = 100, after_id: int | None = None,
                since_id: int | None = None) -> list[dict[str, Any]]:
    """Newest first, each with its crop; `after_id` pages back (ids below it), `since_id` gives only
    newer alerts (ids above it: what a live page has not shown yet). Logged as `alert_view`."""
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
    if since_id:
        query = query.where(alerts.c.id > since_id)
    with engine.begin() as conn:
        rows = conn.execute(query).all()
        images = _images(conn, [r.read_id for r in rows], ("crop",))
        _log_views(conn, who, rows, {"status": status, "from": iso(start), "to": iso(end), "limit": limit,
                                     "before_id": after_id, "since_id": since_id})
    return [_doc(r, images.get(r.read_id)) for r in rows]


def latest_id(engine: sa.Engine) -> int:
    """The newest alert's number (0 if none): lets a live page tell whether there is anything to show
    without reading, and logging, any alert."""
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.max(alerts.c.id))).scalar() or 0


def get(engine: sa.Engine, who: audit.Who, alert_id: int) -> dict[str, Any]:
    """One alert with its crop and context frame; logged under its entry's purpose and case."""
    with engine.begin() as conn:
        row = conn.execute(sa.select(alerts).where(alerts.c.id == alert_id)).first()
        images = _images(conn, [row.read_id], ("crop", "context")) if row else {}
        _log_views(conn, who, [row] if row else [], {"alert": alert_id})
    if row is None:
        raise ApiError(404, f"no alert {alert_id}")
    return _doc(row, images.get(row.read_id))


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
                         purpose=row.purpose, case_number=row.case_number, result_count=1)
    if row is None:
        raise ApiError(404, f"no alert {alert_id}")
    if not done:
        raise ApiError(409, f"alert {alert_id} was already recorded as {row.status} by {row.verified_by} "
                            f"at {iso(row.verified_at)}")
    return _doc(row)
