"""Legal holds (policy 462.4): reads that are, or may become, evidence are kept past retention.

A hold names a case number, a reason and who placed it; it covers reads chosen by id or by a filter
(plate pattern, time range, sites). While a hold is active its reads are skipped by every purge, and
the database refuses to delete them anyway (`legal_hold_reads` references `reads` without ON DELETE).
Release records who, when and why; the hold and its list of reads stay on file, and a released
hold's reads become purgeable once past retention.
"""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from central import audit
from central.clock import utcnow
from central.errors import ApiError
from central.purposes import check_case
from central.schema import legal_hold_reads, legal_holds, reads
from central.search import Query, filters
from wire.times import iso

MAX_READ_IDS = 10000


def place(engine: sa.Engine, who: audit.Who, case_number: str, reason: str, *, read_ids: list[str] | None = None,
          selection: Query | None = None) -> dict[str, Any]:
    """Place a hold on the given reads and/or every read matching `selection`'s filters."""
    case_number = check_case(case_number)
    reason = (reason or "").strip()
    if not reason or len(reason) > 1000:
        raise ValueError("reason: required, at most 1000 characters")
    read_ids = sorted(set(read_ids or []))
    if len(read_ids) > MAX_READ_IDS:
        raise ValueError(f"read_ids: at most {MAX_READ_IDS}; use a filter for more")
    where = filters(selection) if selection is not None else []
    if selection is not None and not where:
        raise ValueError("filter: give at least one of plate, from, to, sites")
    if not read_ids and selection is None:
        raise ValueError("give read_ids or a filter")
    now = utcnow()
    with engine.begin() as conn:
        if read_ids:
            found = set(conn.execute(sa.select(reads.c.read_id).where(reads.c.read_id.in_(read_ids))).scalars())
            unknown = [r for r in read_ids if r not in found]
            if unknown:
                raise ApiError(400, f"no such read(s): {', '.join(unknown[:5])}" + (" ..." if len(unknown) > 5 else ""))
        hold_id = conn.execute(legal_holds.insert().values(case_number=case_number, reason=reason,
                                                           placed_by=who.username, placed_at=now)
                               .returning(legal_holds.c.id)).scalar_one()
        if read_ids:
            conn.execute(legal_hold_reads.insert(), [{"hold_id": hold_id, "read_id": r} for r in read_ids])
        if where:
            chosen = sa.select(sa.literal(hold_id, legal_hold_reads.c.hold_id.type), reads.c.read_id).where(
                *where, reads.c.read_id.not_in(read_ids) if read_ids else sa.true())
            conn.execute(legal_hold_reads.insert().from_select(["hold_id", "read_id"], chosen))
        count = conn.execute(sa.select(sa.func.count()).select_from(legal_hold_reads)
                             .where(legal_hold_reads.c.hold_id == hold_id)).scalar_one()
        audit.append(conn, who, "hold_placed", {"hold": hold_id, "read_ids": len(read_ids),
                                                "filter": selection.logged() if selection else None,
                                                "reason": reason},
                     case_number=case_number, result_count=count)
    return get(engine, hold_id)


def release(engine: sa.Engine, who: audit.Who, hold_id: int, reason: str) -> dict[str, Any]:
    reason = (reason or "").strip()
    if not reason or len(reason) > 1000:
        raise ValueError("reason: required, at most 1000 characters")
    with engine.begin() as conn:
        row = conn.execute(sa.select(legal_holds).where(legal_holds.c.id == hold_id).with_for_update()).first()
        if row is None:
            raise ApiError(404, f"no hold {hold_id}")
        if row.released_at is not None:
            raise ApiError(409, f"hold {hold_id} was released by {row.released_by} at {iso(row.released_at)}")
        conn.execute(legal_holds.update().where(legal_holds.c.id == hold_id).values(
            released_by=who.username, released_at=utcnow(), release_reason=reason))
        audit.append(conn, who, "hold_released", {"hold": hold_id, "reason": reason}, case_number=row.case_number)
    return get(engine, hold_id)


def _doc(r: Any, count: int) -> dict[str, Any]:
    return {"id": r.id, "case_number": r.case_number, "reason": r.reason, "placed_by": r.placed_by,
            "placed_at": iso(r.placed_at), "released_by": r.released_by, "released_at": iso(r.released_at),
            "release_reason": r.release_reason, "active": r.released_at is None, "read_count": count}


def get(engine: sa.Engine, hold_id: int) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(sa.select(legal_holds).where(legal_holds.c.id == hold_id)).first()
        if row is None:
            raise ApiError(404, f"no hold {hold_id}")
        count = conn.execute(sa.select(sa.func.count()).select_from(legal_hold_reads)
                             .where(legal_hold_reads.c.hold_id == hold_id)).scalar_one()
    return _doc(row, count)


def list_holds(engine: sa.Engine, active_only: bool = False) -> list[dict[str, Any]]:
    counts = (sa.select(legal_hold_reads.c.hold_id, sa.func.count().label("n"))
              .group_by(legal_hold_reads.c.hold_id).subquery())
    query = (sa.select(legal_holds, sa.func.coalesce(counts.c.n, 0).label("n"))
             .outerjoin(counts, counts.c.hold_id == legal_holds.c.id).order_by(legal_holds.c.id))
    if active_only:
        query = query.where(legal_holds.c.released_at.is_(None))
    with engine.connect() as conn:
        return [_doc(r, r.n) for r in conn.execute(query).all()]


def active_hold_exists(read_id_column: sa.ColumnElement) -> sa.Exists:
    """EXISTS (an active hold on this read), for purge queries."""
    return sa.exists().where(legal_hold_reads.c.read_id == read_id_column,
                             legal_hold_reads.c.hold_id == legal_holds.c.id,
                             legal_holds.c.released_at.is_(None))
