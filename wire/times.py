"""The contract's one time format: ISO-8601 UTC with milliseconds and a `Z`, e.g. 2026-03-01T12:00:00.250Z.

Units write it, the central store writes and reads it, and both compare the text exactly (a read's
clear `captured_at` must equal the one inside its envelope), so there is one formatter. A naive
datetime is taken as UTC: SQLite hands back naive values for what was stored as UTC.
"""
from __future__ import annotations

import time
from datetime import datetime, timezone


def aware(value: datetime | None) -> datetime | None:
    """`value` in UTC; a naive datetime is taken to be UTC already."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def _text(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso(value: datetime | None) -> str | None:
    """A datetime in the contract's format (None stays None)."""
    value = aware(value)
    return None if value is None else _text(value)


def utc_ms(ts: float) -> str:
    """Unix seconds in the contract's format."""
    return _text(datetime.fromtimestamp(ts, tz=timezone.utc))


def utc_now() -> str:
    """Now, in the contract's format."""
    return utc_ms(time.time())


def parse_utc(text: str) -> datetime:
    """The contract's format back to an aware datetime; ValueError unless it is ISO-8601 ending in Z."""
    if not isinstance(text, str) or not text.endswith("Z"):
        raise ValueError(f"time {text!r} is not ISO-8601 UTC ending in Z")
    try:
        return datetime.fromisoformat(text[:-1] + "+00:00")
    except ValueError:
        raise ValueError(f"time {text!r} is not ISO-8601") from None
