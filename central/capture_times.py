"""Capture times that cannot be right, judged against when the store received the read.

A unit stamps each read with its own clock; a Raspberry Pi has no real-time clock, so before NTP it
can say 1970, and a wrong clock can say 2099. The store keeps that capture time (searches use it) but
never lets it decide anything: retention counts from `received_at`, the store's own clock
(`central.retention`). A capture time before 2000, more than `capture_ahead_s` after its receipt, or
more than `capture_behind_s` before it, is flagged where people see reads (a read's view, search
results) and in the audit report.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa

from central.config import Settings
from central.schema import reads
from wire.times import aware, iso

EARLIEST = datetime(2000, 1, 1, tzinfo=timezone.utc)


def flag(captured_at: datetime | str, received_at: datetime | str, settings: Settings) -> str | None:
    """Why this capture time is implausible, or None."""
    captured, received = _when(captured_at), _when(received_at)
    if captured < EARLIEST:
        return "capture time before 2000: the unit's clock was not set"
    if captured > received + timedelta(seconds=settings.capture_ahead_s):
        return f"capture time {_span(captured - received)} after the store received it: the unit's clock is ahead"
    if captured < received - timedelta(seconds=settings.capture_behind_s):
        return (f"capture time {_span(received - captured)} before the store received it: the unit's clock "
                "is behind, or the read was held back")
    return None


def _when(value: datetime | str) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return aware(value)


def _span(delta: timedelta) -> str:
    days = delta.total_seconds() / 86400
    return f"{days:.0f} days" if days >= 2 else f"{delta.total_seconds() / 3600:.1f} hours"


def annotate(doc: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """A read's document (with captured_at and received_at) with `capture_time_flag` added."""
    doc["capture_time_flag"] = flag(doc["captured_at"], doc["received_at"], settings)
    return doc


def annotate_results(engine: sa.Engine, page: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Search results with `received_at` and `capture_time_flag` added to each."""
    ids = [r["read_id"] for r in page["results"]]
    if ids:
        with engine.connect() as conn:
            got = dict(conn.execute(sa.select(reads.c.read_id, reads.c.received_at)
                                    .where(reads.c.read_id.in_(ids))).all())
        for r in page["results"]:
            received = got.get(r["read_id"])
            r["received_at"] = iso(received) if received else None
            r["capture_time_flag"] = flag(r["captured_at"], received, settings) if received else None
    return page


def implausible(engine: sa.Engine, settings: Settings, start: datetime, end: datetime,
                limit: int = 1000) -> dict[str, Any]:
    """Reads received in [start, end] whose capture time is implausible: per unit, with examples.
    Counts and read ids only: no plate goes into the audit report."""
    query = (sa.select(reads.c.read_id, reads.c.unit_id, reads.c.captured_at, reads.c.received_at)
             .where(reads.c.received_at >= start, reads.c.received_at <= end)
             .order_by(reads.c.received_at))
    flagged: list[dict[str, Any]] = []
    with engine.connect() as conn:
        # judged in Python, row by row (four columns, streamed), so both back ends agree without
        # date arithmetic in SQL
        rows = conn.execution_options(yield_per=5000).execute(query)
        for r in rows:
            why = flag(r.captured_at, r.received_at, settings)
            if why:
                flagged.append({"read_id": r.read_id, "unit_id": r.unit_id, "captured_at": _iso(r.captured_at),
                                "received_at": _iso(r.received_at), "why": why})
    per_unit: dict[str, int] = {}
    for f in flagged:
        per_unit[f["unit_id"]] = per_unit.get(f["unit_id"], 0) + 1
    return {"count": len(flagged), "per_unit": dict(sorted(per_unit.items())), "reads": flagged[:limit],
            "limits": {"earliest": _iso(EARLIEST), "ahead_s": settings.capture_ahead_s,
                       "behind_s": settings.capture_behind_s}}


def _iso(value: datetime) -> str:
    return iso(value)
