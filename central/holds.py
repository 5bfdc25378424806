"""Legal holds (policy 462.4): reads that are, or may become, evidence are kept past retention.

A hold names a case number, a reason and who placed it; it covers reads chosen by id, or by a filter
that is bounded: a plate (or a pattern with enough known characters) and a time window, both
required, optionally sites. So no hold takes the whole store out of retention; one that is still
broad (a partial plate, a window over `BROAD_DAYS`, more than `BROAD_READS` reads) says so in its
audit entry and in the audit report. While a hold is active its reads are skipped by every purge,
and the database refuses to delete them anyway (`legal_hold_reads` references `reads` without ON
DELETE). Release records who, when and why; the hold and its list of reads stay on file, and a
released hold's reads become purgeable once past retention.

How many reads a hold covers tells whether a plate was ever seen, so the count is shown only to roles
with data access (`reads.search`); the administrator, who may place holds for the Custodian of
Records, sees neither the count in answers nor in the audit entry of a hold it placed.
"""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from central import audit
from central.clock import utcnow
from central.errors import ApiError
from central.purposes import check_case
from central.roles import allowed
from central.schema import legal_hold_reads, legal_holds, reads
from central.search import Query, filters
from wire import patterns
from wire.times import iso

MAX_READ_IDS = 10000
BROAD_DAYS = 366
BROAD_READS = 1000


def sees_data(who: audit.Who) -> bool:
    """Whether `who` has a role with data access (a command-line principal without a role does not)."""
    role = getattr(who, "role", None)
    return role is not None and allowed(role, "reads.search")


def _bounded(selection: Query) -> None:
    missing = [name for name, value in (("plate", selection.plate), ("from", selection.start),
                                        ("to", selection.end)) if not value]
    if missing:
        raise ValueError(f"filter: a hold is bounded to a plate (or pattern) and a time window: give "
                         f"{', '.join(missing)} (or name the reads by id)")


def breadth(selection: Query | None, count: int) -> list[str]:
    """Why a hold is broad (empty if it is not)."""
    why = []
    if selection is not None and selection.plate and patterns.is_partial(selection.plate):
        why.append(f"partial plate {selection.plate}")
    if selection is not None and selection.start and selection.end \
            and (selection.end - selection.start).days > BROAD_DAYS:
        why.append(f"window of {(selection.end - selection.start).days} days")
    if count > BROAD_READS:
        why.append(f"{count} reads")
    return why


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
    if selection is not None:
        _bounded(selection)
    where = filters(selection) if selection is not None else []
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
        shown = sees_data(who)
        broad = breadth(selection, count if shown else 0)     # no count-based reason where no count is shown
        audit.append(conn, who, "hold_placed", {"hold": hold_id, "read_ids": len(read_ids),
                                                "filter": selection.logged() if selection else None,
                                                "reason": reason, "broad": broad},
                     case_number=case_number, result_count=count if shown else None)
    return get(engine, hold_id, counts=shown)


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
    return get(engine, hold_id, counts=sees_data(who))


def _doc(r: Any, count: int, counts: bool) -> dict[str, Any]:
    return {"id": r.id, "case_number": r.case_number, "reason": r.reason, "placed_by": r.placed_by,
            "placed_at": iso(r.placed_at), "released_by": r.released_by, "released_at": iso(r.released_at),
            "release_reason": r.release_reason, "active": r.released_at is None,
            "read_count": count if counts else None}


def get(engine: sa.Engine, hold_id: int, counts: bool = True) -> dict[str, Any]:
    """One hold; `counts` False leaves out how many reads it holds (for roles without data access)."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(legal_holds).where(legal_holds.c.id == hold_id)).first()
        if row is None:
            raise ApiError(404, f"no hold {hold_id}")
        count = conn.execute(sa.select(sa.func.count()).select_from(legal_hold_reads)
                             .where(legal_hold_reads.c.hold_id == hold_id)).scalar_one()
    return _doc(row, count, counts)


def list_holds(engine: sa.Engine, active_only: bool = False, counts: bool = True) -> list[dict[str, Any]]:
    sizes = (sa.select(legal_hold_reads.c.hold_id, sa.func.count().label("n"))
             .group_by(legal_hold_reads.c.hold_id).subquery())
    query = (sa.select(legal_holds, sa.func.coalesce(sizes.c.n, 0).label("n"))
             .outerjoin(sizes, sizes.c.hold_id == legal_holds.c.id).order_by(legal_holds.c.id))
    if active_only:
        query = query.where(legal_holds.c.released_at.is_(None))
    with engine.connect() as conn:
        return [_doc(r, r.n, counts) for r in conn.execute(query).all()]


def active_hold_exists(read_id_column: sa.ColumnElement) -> sa.Exists:
    """EXISTS (an active hold on this read), for purge queries."""
    return sa.exists().where(legal_hold_reads.c.read_id == read_id_column,
                             legal_hold_reads.c.hold_id == legal_holds.c.id,
                             legal_holds.c.released_at.is_(None))
