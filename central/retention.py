"""Retention (policy 462.4): keep reads for the retention period (5 years by default), then purge
them with their images and alerts, except reads under an active legal hold.

The period counts from `received_at`, the store's own clock when the read arrived, never from the
unit's capture time: a unit without a set clock says 1970 (which would purge the read at once, against
the five-year minimum) or 2099 (which would keep it for ever). Implausible capture times are flagged
instead (`central.capture_times`).

A run works in batches, each its own transaction, oldest first, so a purge of millions of reads
never holds one huge transaction and can be interrupted and run again. Each run is a row in
`retention_runs` (cutoff, counts, who or what started it) and an entry in the audit chain. The
database backs the hold rule: a held read cannot be deleted while its hold link exists, so a hold
placed between choosing a batch and deleting it makes that batch fail and be chosen again.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from central import audit
from central.clock import utcnow, years_before
from central.config import Settings
from central.holds import active_hold_exists
from central.schema import alerts, legal_hold_reads, legal_holds, read_images, reads, retention_runs
from wire.times import iso

BATCH = 5000
RETRIES = 3


def cutoff_for(settings: Settings, now: datetime | None = None) -> datetime:
    return years_before(now or utcnow(), settings.retention_years)


def _expired(cutoff: datetime) -> sa.ColumnElement[bool]:
    return sa.and_(reads.c.received_at < cutoff, ~active_hold_exists(reads.c.read_id))


def _among(column: sa.ColumnElement, ids: list[str], dialect: str) -> sa.ColumnElement[bool]:
    """column IN ids; on PostgreSQL one array parameter (= ANY) instead of thousands of parameters."""
    if dialect == "postgresql":
        return column == sa.any_(sa.bindparam(None, ids, type_=postgresql.ARRAY(sa.String)))
    return column.in_(ids)


def _purge_batch(engine: sa.Engine, cutoff: datetime, batch: int) -> tuple[int, int, int]:
    """Delete one batch; returns (reads, images, alerts) deleted."""
    with engine.begin() as conn:
        chosen = sa.select(reads.c.read_id).where(_expired(cutoff)).order_by(reads.c.received_at).limit(batch)
        if conn.dialect.name == "postgresql":
            chosen = chosen.with_for_update(of=reads)
        ids = list(conn.execute(chosen).scalars())
        if not ids:
            return 0, 0, 0
        # links left by released holds go with the read; an active hold's link stays and stops the delete
        d = conn.dialect.name
        released = sa.select(legal_holds.c.id).where(legal_holds.c.released_at.is_not(None))
        conn.execute(legal_hold_reads.delete().where(_among(legal_hold_reads.c.read_id, ids, d),
                                                     legal_hold_reads.c.hold_id.in_(released)))
        n_alerts = conn.execute(alerts.delete().where(_among(alerts.c.read_id, ids, d))).rowcount
        n_images = conn.execute(read_images.delete().where(_among(read_images.c.read_id, ids, d))).rowcount
        n_reads = conn.execute(reads.delete().where(_among(reads.c.read_id, ids, d))).rowcount
        return n_reads, n_images, n_alerts


def _held_expired(engine: sa.Engine, cutoff: datetime) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(reads).where(
            reads.c.received_at < cutoff, active_hold_exists(reads.c.read_id))).scalar_one()


def run(engine: sa.Engine, settings: Settings, who: audit.Who, *, now: datetime | None = None,
        batch: int = BATCH, dry_run: bool = False) -> dict[str, Any]:
    """Purge everything past retention that is not held; return the run's record."""
    now = now or utcnow()
    cutoff = cutoff_for(settings, now)
    if dry_run:
        with engine.connect() as conn:
            due = conn.execute(sa.select(sa.func.count()).select_from(reads).where(_expired(cutoff))).scalar_one()
        return {"dry_run": True, "cutoff": iso(cutoff), "retention_years": settings.retention_years,
                "reads_due": due, "held_kept": _held_expired(engine, cutoff)}
    with engine.begin() as conn:
        run_id = conn.execute(retention_runs.insert().values(
            started_at=now, cutoff=cutoff, retention_years=settings.retention_years, triggered_by=who.username,
            status="running").returning(retention_runs.c.id)).scalar_one()
    totals = [0, 0, 0]
    try:
        failures = 0
        while True:
            try:
                done = _purge_batch(engine, cutoff, batch)
            except sa.exc.IntegrityError:        # a hold arrived for a read in this batch: choose again
                failures += 1
                if failures > RETRIES:
                    raise
                continue
            totals = [a + b for a, b in zip(totals, done)]
            if done[0] < batch:
                break
        held = _held_expired(engine, cutoff)
    except Exception as exc:
        with engine.begin() as conn:
            conn.execute(retention_runs.update().where(retention_runs.c.id == run_id).values(
                finished_at=utcnow(), status="failed", error=str(exc)[:1000], reads_purged=totals[0],
                images_purged=totals[1], alerts_purged=totals[2]))
            audit.append(conn, who, "retention_run", {"run": run_id, "status": "failed", "cutoff": iso(cutoff),
                                                      "reads": totals[0], "error": str(exc)[:200]},
                         result_count=totals[0])
        raise
    with engine.begin() as conn:
        conn.execute(retention_runs.update().where(retention_runs.c.id == run_id).values(
            finished_at=utcnow(), status="done", reads_purged=totals[0], images_purged=totals[1],
            alerts_purged=totals[2], held_kept=held))
        audit.append(conn, who, "retention_run", {"run": run_id, "status": "done", "cutoff": iso(cutoff),
                                                  "reads": totals[0], "images": totals[1], "alerts": totals[2],
                                                  "held_kept": held}, result_count=totals[0])
    return get_run(engine, run_id)


def _doc(r: Any) -> dict[str, Any]:
    return {"id": r.id, "started_at": iso(r.started_at), "finished_at": iso(r.finished_at), "cutoff": iso(r.cutoff),
            "retention_years": r.retention_years, "triggered_by": r.triggered_by, "status": r.status,
            "reads_purged": r.reads_purged, "images_purged": r.images_purged, "alerts_purged": r.alerts_purged,
            "held_kept": r.held_kept, "error": r.error}


def get_run(engine: sa.Engine, run_id: int) -> dict[str, Any]:
    with engine.connect() as conn:
        return _doc(conn.execute(sa.select(retention_runs).where(retention_runs.c.id == run_id)).one())


def list_runs(engine: sa.Engine, start: datetime | None = None, end: datetime | None = None,
              limit: int = 100) -> list[dict[str, Any]]:
    query = sa.select(retention_runs).order_by(retention_runs.c.id.desc()).limit(limit)
    if start:
        query = query.where(retention_runs.c.started_at >= start)
    if end:
        query = query.where(retention_runs.c.started_at <= end)
    with engine.connect() as conn:
        return [_doc(r) for r in conn.execute(query).all()]


def last_run_at(engine: sa.Engine) -> datetime | None:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.max(retention_runs.c.started_at))
                            .where(retention_runs.c.status == "done")).scalar()
