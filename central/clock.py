"""The central store's own time helpers: now, time input from people, calendar arithmetic.

SQLite hands back naive datetimes (everything stored is UTC); PostgreSQL hands back aware ones. Every
value read from the database goes through `wire.times.aware` before it is compared, and is printed
with `wire.times.iso`, the contract's one format.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

from wire.times import aware


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def to_ms(value: datetime) -> datetime:
    """Drop sub-millisecond digits, so a time survives both back ends and ISO text unchanged."""
    value = aware(value)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def parse_time(text: str, *, end_of_day: bool = False) -> datetime:
    """Accept `YYYY-MM-DD` (start, or end with end_of_day) or ISO-8601 with a zone; return UTC."""
    text = text.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            moment = datetime.combine(day, time.min, timezone.utc)
            return moment + timedelta(days=1) - timedelta(microseconds=1) if end_of_day else moment
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"time {text!r}: use YYYY-MM-DD or ISO-8601 with a zone") from None
    if value.tzinfo is None:
        raise ValueError(f"time {text!r}: give a zone (Z or +hh:mm)")
    return value.astimezone(timezone.utc)


def years_before(moment: datetime, years: int) -> datetime:
    """The same calendar moment `years` earlier (29 February falls back to the 28th)."""
    try:
        return moment.replace(year=moment.year - years)
    except ValueError:
        return moment.replace(year=moment.year - years, day=28)
