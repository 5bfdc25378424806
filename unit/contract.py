"""The read record: what a unit produces and the central store accepts (schema version 1).

`read_id` is made at capture and is the idempotency key end to end. The sensitive part (plate,
candidates, box, crop, context frame) travels only inside a sealed envelope (see `unit.seal`); only
`read_id`, `unit_id`, `captured_at` and sizes are in clear in the unit buffer and on the wire.
"""
from __future__ import annotations

import re
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

SCHEMA_VERSION = 1
PLATE_RE = re.compile(r"^[A-Z0-9]{1,10}$")
DIRECTIONS = ("in", "out", "unknown")


class ReadInvalid(ValueError):
    """A read payload does not satisfy the contract; the message names the field."""


def utc_ms(ts: float) -> str:
    """ISO-8601 UTC with milliseconds, the only time format in the contract."""
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_utc(s: str) -> datetime:
    if not isinstance(s, str) or not s.endswith("Z"):
        raise ReadInvalid(f"time {s!r} is not ISO-8601 UTC ending in Z")
    try:
        return datetime.fromisoformat(s[:-1] + "+00:00")
    except ValueError:
        raise ReadInvalid(f"time {s!r} is not ISO-8601") from None


def new_read_id() -> str:
    return str(uuid.uuid4())


@dataclass
class Read:
    read_id: str
    unit_id: str
    site: str
    lane: str
    direction: str
    captured_at: str
    plate: str
    region: str
    confidence: float
    candidates: list[dict[str, Any]]
    box: list[int]
    model: dict[str, str]
    trigger: dict[str, Any]
    crop_jpeg_b64: str
    context_jpeg_b64: str | None = None
    schema_version: int = field(default=SCHEMA_VERSION)

    def to_payload(self) -> dict[str, Any]:
        return asdict(self)


def validate(payload: dict[str, Any]) -> Read:
    """Check a payload against schema v1; raise ReadInvalid naming the first bad field."""
    if not isinstance(payload, dict):
        raise ReadInvalid("payload is not an object")
    if payload.get("schema_version") != SCHEMA_VERSION:
        raise ReadInvalid(f"schema_version: expected {SCHEMA_VERSION}, got {payload.get('schema_version')!r}")
    need = {"read_id": str, "unit_id": str, "site": str, "lane": str, "direction": str, "captured_at": str,
            "plate": str, "region": str, "confidence": (int, float), "candidates": list, "box": list,
            "model": dict, "trigger": dict, "crop_jpeg_b64": str}
    for key, typ in need.items():
        if key not in payload:
            raise ReadInvalid(f"{key}: missing")
        if not isinstance(payload[key], typ) or isinstance(payload[key], bool):
            raise ReadInvalid(f"{key}: wrong type {type(payload[key]).__name__}")
    try:
        uuid.UUID(payload["read_id"])
    except ValueError:
        raise ReadInvalid("read_id: not a UUID") from None
    parse_utc(payload["captured_at"])
    if not PLATE_RE.match(payload["plate"]):
        raise ReadInvalid("plate: must be 1-10 of A-Z0-9")
    if not 0.0 <= float(payload["confidence"]) <= 1.0:
        raise ReadInvalid("confidence: must be within 0..1")
    if payload["direction"] not in DIRECTIONS:
        raise ReadInvalid(f"direction: one of {', '.join(DIRECTIONS)}")
    if len(payload["box"]) != 4 or not all(isinstance(v, (int, float)) for v in payload["box"]):
        raise ReadInvalid("box: four numbers x0, y0, x1, y1")
    for i, c in enumerate(payload["candidates"]):
        if not isinstance(c, dict) or not isinstance(c.get("plate"), str) or not isinstance(c.get("score"), (int, float)):
            raise ReadInvalid(f"candidates[{i}]: needs plate (str) and score (number)")
    known = set(Read.__dataclass_fields__)
    extra = set(payload) - known
    if extra:
        raise ReadInvalid(f"{sorted(extra)[0]}: unknown field")
    return Read(**payload)
