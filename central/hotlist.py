"""The hot list: entries (exact or partial plates, policy 462.3(c)) and what units receive.

An entry has a pattern (`?` one character, `*` any run), the policy reason for listing it (stolen
vehicle, stolen plate, wanted, missing person, AMBER, investigation; stored as `category`, called
"reason" in the API, the CLI, CSV and the console, where "category" is accepted as the same word), the
purpose from the policy's list and the case or incident number it was entered under (its alerts are
viewed and logged under them), a source, who entered it, an optional expiry, and a free-text `note`
that units show as the label. One entry per pattern; an expired entry may be replaced by a new one for
the same pattern, and so may an entry kept from before entries needed a case number (`needs_case`):
re-entering its pattern with a purpose and case gives it them. The central store is the authority: `central.alerts` matches every ingested read
against the active entries, and, when `retro_days` is given, a new entry against the reads of the last
days too.

What units receive is the `wire.hotlist` document of the active entries, sorted by pattern, signed
with the central signing key.
"""
from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from central import audit
from central.clock import parse_time, utcnow
from central.errors import ApiError
from central.keys import CentralKeys
from central.purposes import check_case, check_purpose
from central.schema import hotlist_entries
from wire import hotlist as wire_hotlist
from wire import patterns
from wire.times import aware, iso

MIN_LITERALS = 3                       # a pattern must not alert on a large share of all traffic
CATEGORIES = {
    "stolen_vehicle": "stolen vehicle",
    "stolen_plate": "stolen plate",
    "wanted": "wanted",
    "missing_person": "missing person",
    "amber": "AMBER alert",
    "investigation": "investigation",
}
CSV_COLUMNS = ("plate", "reason", "purpose", "case_number", "source", "expires", "note")
CSV_REQUIRED = ("plate", "reason", "purpose", "case_number", "source")
CSV_ALIASES = {"category": "reason"}          # "reason" and "category" are one column
MAX_IMPORT_LINES = 20000


def check_category(text: str) -> str:
    """The policy reason for listing a plate, as its code; accepts the code or its words."""
    code = (text or "").strip().lower().replace("-", "_").replace(" ", "_")
    code = {"amber_alert": "amber", "stolen_car": "stolen_vehicle"}.get(code, code)
    if code not in CATEGORIES:
        raise ValueError(f"reason {text!r}: one of {', '.join(CATEGORIES)}")
    return code


def _active(now: datetime) -> sa.ColumnElement[bool]:
    return sa.or_(hotlist_entries.c.expires_at.is_(None), hotlist_entries.c.expires_at > now)


def active_entries(conn: sa.Connection, now: datetime | None = None) -> list[Any]:
    return conn.execute(sa.select(hotlist_entries).where(_active(now or utcnow()))
                        .order_by(hotlist_entries.c.pattern)).all()


def entries(engine: sa.Engine) -> list[dict[str, Any]]:
    """Active entries as units receive them: pattern and label (the unit document's `reason` field is
    the label it shows, i.e. the entry's note)."""
    with engine.connect() as conn:
        rows = active_entries(conn)
    return [{"pattern": r.pattern, "reason": r.note} for r in rows]


def render(engine: sa.Engine, keys: CentralKeys) -> tuple[bytes, str, str]:
    """Return (body, etag, signature_b64)."""
    body, etag = wire_hotlist.render(entries(engine))
    return body, etag, keys.sign(body)


def doc(r: Any, now: datetime | None = None) -> dict[str, Any]:
    """An entry as the API, the CLI's --json and the console show it; `reason` and `category` are the
    same code, `reason_text` its words."""
    now = now or utcnow()
    expires = aware(r.expires_at)
    return {"id": r.id, "pattern": r.pattern, "reason": r.category, "category": r.category,
            "reason_text": CATEGORIES.get(r.category, r.category), "purpose": r.purpose,
            "case_number": r.case_number, "note": r.note, "source": r.source, "entered_by": r.entered_by,
            "added_at": iso(r.added_at), "expires_at": iso(expires), "active": expires is None or expires > now,
            "needs_case": not r.case_number}


def list_entries(engine: sa.Engine, include_expired: bool = False) -> list[dict[str, Any]]:
    now = utcnow()
    query = sa.select(hotlist_entries).order_by(hotlist_entries.c.pattern)
    if not include_expired:
        query = query.where(_active(now))
    with engine.connect() as conn:
        return [doc(r, now) for r in conn.execute(query).all()]


def get(engine: sa.Engine, entry_id: int) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(sa.select(hotlist_entries).where(hotlist_entries.c.id == entry_id)).first()
    if row is None:
        raise ApiError(404, f"no hot-list entry {entry_id}")
    return doc(row)


def _checked(pattern: str, reason: str, purpose: str, case_number: str, source: str, note: str | None,
             expires_at: datetime | None, now: datetime) -> dict[str, Any]:
    """Every field checked; the ValueError names the field (as the API, CSV and console call it)."""
    pattern = patterns.check(pattern, MIN_LITERALS)
    category = check_category(reason)
    purpose = check_purpose(purpose)
    case_number = check_case(case_number)
    source = (source or "").strip()
    if not source or len(source) > 100:
        raise ValueError("source: required, at most 100 characters")
    note = (note or "").strip() or CATEGORIES[category]
    if len(note) > 200:
        raise ValueError("note: at most 200 characters")
    if expires_at is not None and aware(expires_at) <= now:
        raise ValueError("expires: must be in the future")
    return {"pattern": pattern, "category": category, "purpose": purpose, "case_number": case_number,
            "source": source, "note": note, "expires_at": expires_at}


def _store(conn: sa.Connection, values: dict[str, Any], by: audit.Who, now: datetime) -> int:
    """Insert, or replace an expired entry with the same pattern, or one kept from before entries needed
    a case number (re-entering it gives it one); 409 if another active one exists."""
    old = conn.execute(sa.select(hotlist_entries.c.id, hotlist_entries.c.expires_at, hotlist_entries.c.case_number)
                       .where(hotlist_entries.c.pattern == values["pattern"])).first()
    row = {**values, "entered_by": by.username, "added_at": now}
    if old is not None:
        expires = aware(old.expires_at)
        if (expires is None or expires > now) and old.case_number:
            raise ApiError(409, f"{values['pattern']} is already on the hot list (entry {old.id})")
        conn.execute(hotlist_entries.update().where(hotlist_entries.c.id == old.id).values(**row))
        entry_id = old.id
    else:
        entry_id = conn.execute(hotlist_entries.insert().values(**row).returning(hotlist_entries.c.id)).scalar_one()
    audit.append(conn, by, "hotlist_add", {"entry": entry_id, "pattern": values["pattern"],
                                           "reason": values["category"], "source": values["source"],
                                           "expires": iso(values["expires_at"])},
                 purpose=values["purpose"], case_number=values["case_number"])
    return entry_id


def add(engine: sa.Engine, pattern: str, *, reason: str, purpose: str, case_number: str, source: str,
        by: audit.Who, note: str | None = None, expires_at: datetime | None = None,
        retro_days: int = 0) -> dict[str, Any]:
    """Add one entry; returns it, with `retro_alerts` (alerts raised from the last `retro_days` days of
    reads, in the same transaction). ValueError for bad input, ApiError 409 if already listed."""
    from central import alerts                     # alerts matches reads against entries: it imports us
    now = utcnow()
    values = _checked(pattern, reason, purpose, case_number, source, note, expires_at, now)
    with engine.begin() as conn:
        entry_id = _store(conn, values, by, now)
        raised = alerts.retro_check(conn, entry_id, retro_days, by, now) if retro_days > 0 else 0
        row = conn.execute(sa.select(hotlist_entries).where(hotlist_entries.c.id == entry_id)).one()
    return {**doc(row, now), "retro_alerts": raised, "retro_days": retro_days}


def remove(engine: sa.Engine, pattern: str, by: audit.Who | None = None) -> bool:
    with engine.begin() as conn:
        gone = conn.execute(hotlist_entries.delete().where(
            hotlist_entries.c.pattern == patterns.normalise(pattern))).rowcount == 1
        if gone:
            audit.append(conn, by or audit.system("cli"), "hotlist_remove", {"pattern": patterns.normalise(pattern)})
    return gone


def remove_id(engine: sa.Engine, entry_id: int, by: audit.Who) -> None:
    with engine.begin() as conn:
        pattern = conn.execute(sa.select(hotlist_entries.c.pattern).where(hotlist_entries.c.id == entry_id)).scalar()
        if pattern is None:
            raise ApiError(404, f"no hot-list entry {entry_id}")
        conn.execute(hotlist_entries.delete().where(hotlist_entries.c.id == entry_id))
        audit.append(conn, by, "hotlist_remove", {"entry": entry_id, "pattern": pattern})


def _csv_header(names: list[str] | None) -> list[str]:
    header = [CSV_ALIASES.get(h.strip().lower(), h.strip().lower()) for h in (names or [])]
    missing = [c for c in CSV_REQUIRED if c not in header]
    if missing:
        raise ValueError(f"header: needs columns {', '.join(CSV_REQUIRED)} (optional expires, note); "
                         f"missing {', '.join(missing)}")
    unknown = [c for c in header if c not in CSV_COLUMNS]
    if unknown:
        raise ValueError(f"header: unknown column(s) {', '.join(unknown)}")
    repeated = sorted({c for c in header if header.count(c) > 1})
    if repeated:
        raise ValueError(f"header: column(s) {', '.join(repeated)} given twice (reason and category are one column)")
    return header


def import_csv(engine: sa.Engine, text: str, by: audit.Who, dry_run: bool = False,
               retro_days: int = 0) -> dict[str, Any]:
    """Import `plate,reason,purpose,case_number,source[,expires][,note]` lines (a header line first,
    columns in any order; `category` may stand for `reason`).

    Every line is checked; good lines are added together, bad ones reported by line number with
    the reason and left out. `dry_run` checks without adding."""
    from central import alerts
    now = utcnow()
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    reader.fieldnames = _csv_header(reader.fieldnames)
    good: list[tuple[int, dict[str, Any]]] = []
    errors: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for row in reader:
        line = reader.line_num
        if line > MAX_IMPORT_LINES + 1:
            raise ValueError(f"at most {MAX_IMPORT_LINES} lines per import")
        if None in row:
            errors.append({"line": line, "error": "more fields than the header has"})
            continue
        cells = {k: (v or "").strip() for k, v in row.items()}
        if not any(cells.values()):
            continue
        try:
            expires = parse_time(cells["expires"], end_of_day=True) if cells.get("expires") else None
            values = _checked(cells["plate"], cells["reason"], cells["purpose"], cells["case_number"],
                              cells["source"], cells.get("note") or None, expires, now)
            if values["pattern"] in seen:
                raise ValueError(f"{values['pattern']} repeats line {seen[values['pattern']]}")
        except ValueError as exc:
            errors.append({"line": line, "error": str(exc)})
            continue
        seen[values["pattern"]] = line
        good.append((line, values))
    added: list[dict[str, Any]] = []
    with engine.begin() as conn:
        for line, values in good:
            old = conn.execute(sa.select(hotlist_entries.c.id, hotlist_entries.c.expires_at)
                               .where(hotlist_entries.c.pattern == values["pattern"])).first()
            if old is not None and (old.expires_at is None or aware(old.expires_at) > now):
                errors.append({"line": line, "error": f"{values['pattern']} is already on the hot list (entry {old.id})"})
                continue
            if dry_run:
                added.append({"line": line, "pattern": values["pattern"]})
                continue
            entry_id = _store(conn, values, by, now)
            raised = alerts.retro_check(conn, entry_id, retro_days, by, now) if retro_days > 0 else 0
            added.append({"line": line, "pattern": values["pattern"], "id": entry_id, "retro_alerts": raised})
    errors.sort(key=lambda e: e["line"])
    return {"added": added, "errors": errors, "dry_run": dry_run}
