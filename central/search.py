"""Searching reads (policy 462.3(a)(b)(c), 462.5(b)) and viewing one.

A search is refused unless it names a purpose from the policy's list and a case or incident number,
and unless it names a plate (exact, or partial with `?` and `*` and enough known characters): a
search by time, site, lane or direction alone would hand out every read in the store. The one search
without a plate is a crime-scene canvass (462.3(c)): that purpose, one or more sites and a time
window of at most `CANVASS_MAX`. With `similar`, a whole plate also finds the reader's usual
confusions (`central.similar_plates`). Other filters: time range, sites, lane, direction. Results come
newest first with the plate crop, a page at a time (keyset paging on (captured_at, read_id), so page
50 costs what page 1 costs). The audit entry is written in the same transaction as the query, with
what was asked and how many results went back; each page is its own access.
"""
from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from central import audit, similar_plates
from central.clock import parse_time
from central.errors import ApiError
from central.purposes import check_case, check_purpose
from central.schema import read_images, reads
from wire import patterns
from wire.read import DIRECTIONS
from wire.times import aware, iso

MAX_LIMIT = 200
MIN_SEARCH_LITERALS = 2
CANVASS = "crime_scene_canvass"
CANVASS_MAX = timedelta(hours=72)
MAX_SITES = 50


@dataclass
class Query:
    purpose: str
    case_number: str
    plate: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    sites: list[str] = field(default_factory=list)
    lane: str | None = None
    direction: str | None = None
    limit: int = 50
    cursor: str | None = None
    similar: bool = False

    def checked(self) -> "Query":
        """Validate everything before any data is touched; ValueError names the field."""
        self.purpose = check_purpose(self.purpose)
        self.case_number = check_case(self.case_number)
        if self.plate:
            self.plate = patterns.check(self.plate, MIN_SEARCH_LITERALS)
        if self.start and self.end and self.start > self.end:
            raise ValueError("from is after to")
        if self.direction and self.direction not in DIRECTIONS:
            raise ValueError(f"direction: one of {', '.join(DIRECTIONS)}")
        if not 1 <= self.limit <= MAX_LIMIT:
            raise ValueError(f"limit: 1 to {MAX_LIMIT}")
        if len(self.sites) > MAX_SITES:
            raise ValueError(f"sites: at most {MAX_SITES}")
        if self.similar and (not self.plate or patterns.is_partial(self.plate)):
            raise ValueError("similar: give a whole plate (no ? or *) to find plates like it")
        if not self.plate and not self.is_canvass():
            raise ValueError(f"plate: give a plate, or a pattern with at least {MIN_SEARCH_LITERALS} known "
                             f"characters; only a crime-scene canvass ({CANVASS}) searches without one, "
                             f"and it needs a site and a time window (from and to) of at most {canvass_hours()} hours")
        return self

    def is_canvass(self) -> bool:
        """A canvass around a crime scene (462.3(c)): its purpose, sites, and a bounded window."""
        return (self.purpose == CANVASS and bool(self.sites) and self.start is not None
                and self.end is not None and self.end - self.start <= CANVASS_MAX)

    def logged(self) -> dict[str, Any]:
        """What was queried, as the audit entry records it (Civil Code 1798.90.52: data queried)."""
        return {"plate": self.plate, "from": iso(self.start), "to": iso(self.end), "sites": self.sites,
                "lane": self.lane, "direction": self.direction, "limit": self.limit,
                "page_after": _decode_cursor(self.cursor)[1] if self.cursor else None,
                **({"similar": True} if self.similar else {})}


def canvass_hours() -> int:
    return int(CANVASS_MAX.total_seconds() // 3600)


def query_from(doc: dict[str, Any]) -> Query:
    """Build a Query from API/JSON input (times as ISO text or dates)."""
    def when(name: str, end: bool) -> datetime | None:
        return parse_time(doc[name], end_of_day=end) if doc.get(name) else None
    sites = doc.get("sites") or ([doc["site"]] if doc.get("site") else [])
    return Query(purpose=doc.get("purpose") or "", case_number=doc.get("case_number") or "",
                 plate=doc.get("plate") or None, start=when("from", False), end=when("to", True),
                 sites=list(sites), lane=doc.get("lane") or None, direction=doc.get("direction") or None,
                 limit=int(doc["limit"]) if doc.get("limit") is not None else 50, cursor=doc.get("cursor") or None,
                 similar=_flag(doc.get("similar"), "similar"))


def _flag(value: Any, name: str) -> bool:
    if value in (None, "", False, "0", "false", "off"):
        return False
    if value in (True, "1", "true", "on"):
        return True
    raise ValueError(f"{name}: true or false")


def selection_from(doc: dict[str, Any]) -> Query:
    """Filters only (plate, from, to, sites, lane, direction), for legal holds and sharing requests,
    where the purpose and case belong to the hold or request rather than to a search."""
    q = query_from({**doc, "purpose": "criminal_investigation", "case_number": "n/a"})
    if q.plate:
        q.plate = patterns.check(q.plate, MIN_SEARCH_LITERALS)
    if q.start and q.end and q.start > q.end:
        raise ValueError("from is after to")
    if not filters(q):
        raise ValueError("filter: give at least one of plate, from, to, sites")
    return q


def _encode_cursor(captured_at: datetime, read_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([iso(captured_at), read_id]).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        at, rid = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return parse_time(at), str(rid)
    except (ValueError, TypeError, binascii.Error):
        raise ValueError("cursor: not one this server gave out") from None


def filters(q: Query) -> list[sa.ColumnElement[bool]]:
    """The WHERE clauses for a query's filters (shared with legal holds and sharing)."""
    where: list[sa.ColumnElement[bool]] = []
    if q.plate:
        if q.similar:
            where.append(similar_plates.similar_to(reads.c.plate, q.plate))
        elif patterns.is_partial(q.plate):
            where.append(reads.c.plate.like(patterns.to_like(q.plate), escape=patterns.ESCAPE))
        else:
            where.append(reads.c.plate == q.plate)
    if q.start:
        where.append(reads.c.captured_at >= q.start)
    if q.end:
        where.append(reads.c.captured_at <= q.end)
    if q.sites:
        where.append(reads.c.site.in_(q.sites))
    if q.lane:
        where.append(reads.c.lane == q.lane)
    if q.direction:
        where.append(reads.c.direction == q.direction)
    return where


def _result(row: Any) -> dict[str, Any]:
    return {"read_id": row.read_id, "unit_id": row.unit_id, "site": row.site, "lane": row.lane,
            "direction": row.direction, "captured_at": iso(row.captured_at), "plate": row.plate,
            "region": row.region, "confidence": row.confidence,
            "crop_jpeg_b64": base64.b64encode(row.jpeg).decode("ascii") if row.jpeg is not None else None}


def _columns(crop: Any) -> tuple[Any, ...]:
    return (reads.c.read_id, reads.c.unit_id, reads.c.site, reads.c.lane, reads.c.direction, reads.c.captured_at,
            reads.c.plate, reads.c.region, reads.c.confidence, crop.c.jpeg)


def _before(at_col: Any, id_col: Any, cursor: str) -> sa.ColumnElement[bool]:
    at, rid = _decode_cursor(cursor)
    return sa.tuple_(at_col, id_col) < sa.tuple_(sa.literal(at, reads.c.captured_at.type),
                                                  sa.literal(rid, reads.c.read_id.type))


def _page(q: Query) -> sa.Select:
    crop = read_images.alias("crop")
    stmt = (sa.select(*_columns(crop))
            .outerjoin(crop, sa.and_(crop.c.read_id == reads.c.read_id, crop.c.kind == "crop"))
            .where(*filters(q))
            .order_by(reads.c.captured_at.desc(), reads.c.read_id.desc())
            .limit(q.limit + 1))
    return stmt.where(_before(reads.c.captured_at, reads.c.read_id, q.cursor)) if q.cursor else stmt


def _similar_page(q: Query, dialect: str) -> sa.Select:
    """A similar search's page: its matches first, fenced off (MATERIALIZED on PostgreSQL), then
    ordered and cut to the page, then joined to their columns and crops. Asked for newest-first with
    a LIMIT, PostgreSQL would otherwise walk the time index backwards hoping to meet a few thousand
    spellings soon, and read every row when they are rare."""
    hits = sa.select(reads.c.read_id, reads.c.captured_at).where(*filters(q)).cte("similar_hits")
    if dialect == "postgresql":
        hits = hits.prefix_with("MATERIALIZED")
    page = sa.select(hits.c.read_id, hits.c.captured_at)
    if q.cursor:
        page = page.where(_before(hits.c.captured_at, hits.c.read_id, q.cursor))
    page = page.order_by(hits.c.captured_at.desc(), hits.c.read_id.desc()).limit(q.limit + 1).subquery("page")
    crop = read_images.alias("crop")
    return (sa.select(*_columns(crop))
            .select_from(page.join(reads, reads.c.read_id == page.c.read_id)
                         .outerjoin(crop, sa.and_(crop.c.read_id == page.c.read_id, crop.c.kind == "crop")))
            .order_by(page.c.captured_at.desc(), page.c.read_id.desc()))


def search(engine: sa.Engine, who: audit.Who, q: Query, timeout_s: float | None = None) -> dict[str, Any]:
    """Run one page of a search and log it. On PostgreSQL a search that runs past `timeout_s` is
    cancelled and refused (400): patterns without three consecutive known characters cannot use the
    trigram index and scan every read."""
    q.checked()
    stmt = _similar_page(q, engine.dialect.name) if q.similar else _page(q)
    try:
        with engine.begin() as conn:
            if timeout_s and conn.dialect.name == "postgresql":
                conn.exec_driver_sql(f"SET LOCAL statement_timeout = {int(timeout_s * 1000)}")
            rows = conn.execute(stmt).all()
            page, more = rows[:q.limit], len(rows) > q.limit
            audit.append(conn, who, "search", q.logged(), purpose=q.purpose, case_number=q.case_number,
                         result_count=len(page))
    except sa.exc.OperationalError as exc:
        if getattr(exc.orig, "sqlstate", None) != "57014":       # query_canceled
            raise
        raise ApiError(400, f"search too broad: it ran past {timeout_s:g} s. Give three or more consecutive "
                            "known characters, a shorter time range or a site") from None
    results = [_result(r) for r in page]
    last = page[-1] if page else None
    return {"results": results, "count": len(results),
            "next_cursor": _encode_cursor(aware(last.captured_at), last.read_id) if more and last else None}


def view(engine: sa.Engine, who: audit.Who, read_id: str, purpose: str, case_number: str) -> dict[str, Any]:
    """One read in full, with its crop and context frame; logged as a `view`."""
    purpose, case_number = check_purpose(purpose), check_case(case_number)
    with engine.begin() as conn:
        row = conn.execute(sa.select(reads).where(reads.c.read_id == read_id)).mappings().first()
        images = dict(conn.execute(sa.select(read_images.c.kind, read_images.c.jpeg)
                                   .where(read_images.c.read_id == read_id)).all()) if row else {}
        audit.append(conn, who, "view", {"read_id": read_id}, purpose=purpose, case_number=case_number,
                     result_count=1 if row else 0)
    if row is None:
        raise ApiError(404, f"no read {read_id}")
    return read_doc(row, images)


def read_doc(row: Any, images: dict[str, bytes]) -> dict[str, Any]:
    doc = {k: row[k] for k in ("read_id", "unit_id", "site", "lane", "direction", "plate", "region",
                               "confidence", "candidates", "box", "model", "trigger", "schema_version")}
    doc.update(captured_at=iso(row["captured_at"]), received_at=iso(row["received_at"]))
    for kind, data in images.items():
        doc[f"{kind}_jpeg_b64"] = base64.b64encode(data).decode("ascii")
    return doc
