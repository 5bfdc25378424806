"""Ingest a unit's batch of sealed reads: open, validate, store idempotently by read_id.

Each read gets its own verdict (`wire.batch`: stored, duplicate or rejected with a reason).
Opening and validating happen before the transaction; the insert is one statement
`INSERT .. ON CONFLICT DO NOTHING RETURNING read_id`, so concurrent retries of the same read
cannot both store it, on SQLite and on PostgreSQL alike. Stored reads are matched against the hot
list in the same transaction (`central.alerts.raise_for`).

The whole batch is tried at once inside a SAVEPOINT. Should the database refuse it (a read that passes
the contract yet breaks a column, a constraint or a trigger), the batch is tried again one read per
SAVEPOINT: a read the database refuses is rejected with the database's reason, and every other read is
stored. One odd read therefore never blocks the reads queued behind it on a unit.
"""
from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from sqlalchemy.dialects import postgresql, sqlite

from central import alerts
from central.errors import ApiError
from central.schema import read_images, reads
from central.units import UnitRow
from wire.batch import DUPLICATE, REJECTED, STORED, BatchInvalid, BatchTooLong, parse_request, verdict
from wire.read import ReadInvalid, validate
from wire.seal import SealError, open_sealed
from wire.times import parse_utc


class Rejected(Exception):
    """One read is refused; the message is the reason sent back to the unit."""


@dataclass
class Opened:
    row: dict[str, Any]
    images: list[tuple[str, bytes]] = field(default_factory=list)


def parse_batch(body: bytes, max_reads: int) -> list[dict[str, Any]]:
    """The items of a `wire.batch` request. One that is not that shape, or too long, is refused whole
    (400, 413): nothing is stored."""
    try:
        return parse_request(body, max_reads)
    except BatchTooLong as exc:
        raise ApiError(413, str(exc)) from None
    except BatchInvalid as exc:
        raise ApiError(400, str(exc)) from None


def _jpeg(payload: dict[str, Any], name: str) -> bytes:
    try:
        data = base64.b64decode(payload[name], validate=True)
    except (binascii.Error, ValueError):
        raise Rejected(f"{name}: not base64") from None
    if not data.startswith(b"\xff\xd8"):
        raise Rejected(f"{name}: not a JPEG")
    return data


def open_read(item: dict[str, Any], unit: UnitRow, key: X25519PrivateKey, now: datetime) -> Opened:
    """Open and check one wire item; raise Rejected with the reason."""
    read_id = item["read_id"]
    try:
        payload = open_sealed(item["envelope"], key, read_id)
        read = validate(payload)
    except (SealError, ReadInvalid) as exc:
        raise Rejected(str(exc)) from None
    if read.read_id != read_id:
        raise Rejected("read_id: differs from the envelope's read_id")
    if read.unit_id != unit.unit_id:
        raise Rejected(f"unit_id: read says {read.unit_id}, request is signed by {unit.unit_id}")
    if read.site != unit.site:
        raise Rejected(f"site: read says {read.site}, unit is enrolled at {unit.site}")
    if read.captured_at != item["captured_at"]:
        raise Rejected("captured_at: differs from the envelope's clear captured_at")
    images = [("crop", _jpeg(payload, "crop_jpeg_b64"))]
    if read.context_jpeg_b64:
        images.append(("context", _jpeg(payload, "context_jpeg_b64")))
    row = {"read_id": read_id, "unit_id": read.unit_id, "site": read.site, "lane": read.lane,
           "direction": read.direction, "captured_at": parse_utc(read.captured_at), "plate": read.plate,
           "region": read.region, "confidence": float(read.confidence), "candidates": read.candidates,
           "box": read.box, "model": read.model, "trigger": read.trigger,
           "schema_version": read.schema_version, "received_at": now}
    return Opened(row, images)


def _insert(dialect: str, table: sa.Table):
    return (postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table))


def _store(conn: sa.Connection, fresh: dict[str, Opened]) -> set[str]:
    """Insert these reads and their images; the ids newly stored (a read already there is left alone)."""
    stmt = (_insert(conn.dialect.name, reads).on_conflict_do_nothing(index_elements=["read_id"])
            .returning(reads.c.read_id))
    stored = set(conn.execute(stmt, [o.row for o in fresh.values()]).scalars())
    images = [{"read_id": rid, "kind": kind, "jpeg": data}
              for rid, o in fresh.items() if rid in stored for kind, data in o.images]
    if images:
        conn.execute(read_images.insert(), images)
    return stored


# what the database says about the data of one read (a column, a constraint, a trigger); anything else
# (a lost connection, a deadlock) fails the whole request, and the unit sends the batch again
REFUSED = (sa.exc.IntegrityError, sa.exc.DataError)


def _reason(exc: sa.exc.DBAPIError) -> str:
    """The database's own words, first line only, without the statement or parameters (which hold the
    read's plate): enough for an operator to see why, nothing a log should not keep."""
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


def ingest(engine: sa.Engine, unit: UnitRow, items: list[dict[str, Any]], key: X25519PrivateKey) -> list[dict[str, str]]:
    """Open, validate and store `items`; return one result per item, in order."""
    now = datetime.now(timezone.utc)
    verdicts: dict[int, dict[str, str]] = {}
    fresh: dict[str, Opened] = {}              # read_id -> opened, first occurrence in the batch only
    first: dict[str, int] = {}                 # read_id -> its index in the batch, first occurrence
    for i, item in enumerate(items):
        rid = item["read_id"]
        if rid in first:
            verdicts[i] = verdict(rid, DUPLICATE)
            continue
        first[rid] = i
        try:
            fresh[rid] = open_read(item, unit, key, now)
        except Rejected as exc:
            verdicts[i] = verdict(rid, REJECTED, str(exc))

    stored: set[str] = set()
    foreign: set[str] = set()
    if fresh:
        with engine.begin() as conn:
            try:
                with conn.begin_nested():
                    stored = _store(conn, fresh)
            except REFUSED:
                stored = set()
                for rid, opened in fresh.items():
                    try:
                        with conn.begin_nested():
                            stored |= _store(conn, {rid: opened})
                    except REFUSED as exc:
                        verdicts[first[rid]] = verdict(rid, REJECTED, "the store's database refused it: "
                                                       + _reason(exc))
            alerts.raise_for(conn, [o.row for rid, o in fresh.items() if rid in stored], now)
            clash = [rid for rid in fresh if rid not in stored and first[rid] not in verdicts]
            if clash:
                foreign = set(conn.execute(sa.select(reads.c.read_id).where(
                    reads.c.read_id.in_(clash), reads.c.unit_id != unit.unit_id)).scalars())

    results = []
    for i, item in enumerate(items):
        rid = item["read_id"]
        if i in verdicts:
            results.append(verdicts[i])
        elif rid in stored:
            results.append(verdict(rid, STORED))
        elif rid in foreign:
            results.append(verdict(rid, REJECTED, "read_id: already stored from another unit"))
        else:
            results.append(verdict(rid, DUPLICATE))
    return results
