"""Store unit heartbeats (guide: every minute; uptime, versions, queue, drops, health, temperature, disk).

The whole body is kept as JSON so the unit can add facts without a server change; the two figures
that alerting needs first (queue depth, dropped reads) are also lifted into columns.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa

from central.errors import ApiError
from central.schema import heartbeats, units
from wire import jsondoc


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _holds_nul(value: Any) -> bool:
    """PostgreSQL's JSON columns refuse U+0000 (a 500 for the whole heartbeat); refuse it here, by name."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_nul(v) for v in value)
    return False


def record(engine: sa.Engine, unit_id: str, body: bytes) -> None:
    try:
        doc = jsondoc.loads(body)
    except jsondoc.JsonTooDeep as exc:
        raise ApiError(400, f"body: {exc}") from None
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "body is not JSON") from None
    if not isinstance(doc, dict):
        raise ApiError(400, "heartbeat must be a JSON object")
    if _holds_nul(doc):
        raise ApiError(400, "heartbeat: text may not hold a NUL character (U+0000)")
    queue = doc.get("queue") if isinstance(doc.get("queue"), dict) else {}
    now = datetime.now(timezone.utc)
    with engine.begin() as conn:
        conn.execute(heartbeats.insert().values(unit_id=unit_id, received_at=now, body=doc,
                                                queue_depth=_int_or_none(queue.get("depth")),
                                                dropped=_int_or_none(queue.get("dropped"))))
        conn.execute(units.update().where(units.c.unit_id == unit_id).values(last_seen_at=now))

