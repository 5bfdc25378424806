"""The read record: what a unit produces and the central store accepts (schema version 1).

`read_id` is made at capture and is the idempotency key end to end. The sensitive part (plate,
candidates, box, crop, context frame) travels only inside a sealed envelope (see `wire.seal`); only
`read_id`, `unit_id`, `captured_at` and sizes are in clear in the unit buffer and on the wire.
"""
from __future__ import annotations

import re
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from wire.times import parse_utc

SCHEMA_VERSION = 1
DIRECTIONS = ("in", "out", "unknown")         # a lane's direction of travel

# -- limits: one set for the unit, ingest and the central store (central/schema.py sizes its columns from
# these, so a value within them always fits). `validate` checks the plate; the text lengths are enforced
# today only by PostgreSQL's columns (SQLite stores longer text) ----------------------------------------------
PLATE_MAX = 10            # characters of a plate, A-Z and 0-9 only (checked by `validate`)
PLATE_TEXT_MAX = 16       # what a column holding a plate or a hot-list pattern keeps (room above PLATE_MAX)
READ_ID_LEN = 36          # a UUID as text
ID_MAX = 64               # a unit id or a site name
LANE_MAX = 32             # a lane name
DIRECTION_MAX = 16        # a direction (the longest of DIRECTIONS is 7)
REGION_MAX = 16           # a plate region such as "us-ca"
CANDIDATES_MAX = 20       # alternative readings per read (a unit's recognition.top_n is at most this)

PLATE_RE = re.compile(rf"^[A-Z0-9]{{1,{PLATE_MAX}}}$")
ID_RE = re.compile(rf"^[A-Za-z0-9][A-Za-z0-9._-]{{0,{ID_MAX - 1}}}$")    # unit ids and sites, at enrolment


class ReadInvalid(ValueError):
    """A read payload does not satisfy the contract; the message names the field."""


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
    try:
        parse_utc(payload["captured_at"])
    except ValueError as exc:
        raise ReadInvalid(str(exc)) from None
    if not PLATE_RE.match(payload["plate"]):
        raise ReadInvalid(f"plate: must be 1-{PLATE_MAX} of A-Z0-9")
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
