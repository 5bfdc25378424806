"""The read record: what a unit produces and the central store accepts (schema version 1).

`read_id` is made at capture and is the idempotency key end to end. The sensitive part (plate,
candidates, box, crop, context frame) travels only inside a sealed envelope (see `wire.seal`); only
`read_id`, `unit_id`, `captured_at` and sizes are in clear in the unit buffer and on the wire.
"""
from __future__ import annotations

import math
import re
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from wire.times import parse_utc

SCHEMA_VERSION = 1
DIRECTIONS = ("in", "out", "unknown")         # a lane's direction of travel

# -- limits: one set for the unit's config and sealing, ingest and the central store's columns
# (central/schema.py sizes its columns from these). `validate` checks every one of them, so a read that
# passes it fits the store on SQLite and on PostgreSQL alike; the unit runs the same check before it
# seals a read, and its config refuses a unit id, site or lane name these would refuse ---------------------
PLATE_MAX = 10            # characters of a plate, A-Z and 0-9 only
PLATE_TEXT_MAX = 16       # what a column holding a plate or a hot-list pattern keeps (room above PLATE_MAX)
READ_ID_LEN = 36          # a UUID as text
ID_MAX = 64               # a unit id or a site name
LANE_MAX = 32             # a lane name
DIRECTION_MAX = 16        # a direction (the longest of DIRECTIONS is 7)
REGION_MAX = 16           # a plate region such as "us-ca"
CANDIDATES_MAX = 20       # alternative readings per read (a unit's recognition.top_n is at most this)
LABEL_MAX = 64            # a model version, or a text in `trigger` (sensor names, times)
ENTRIES_MAX = 16          # keys in `model` and in `trigger`

PLATE_RE = re.compile(rf"^[A-Z0-9]{{1,{PLATE_MAX}}}$")
ID_RE = re.compile(rf"^[A-Za-z0-9][A-Za-z0-9._-]{{0,{ID_MAX - 1}}}$")    # unit ids and sites
REGION_RE = re.compile(rf"^[A-Za-z0-9_-]{{0,{REGION_MAX}}}$")            # "" when the unit has no guess
# text no column or JSON value may hold: C0 and C1 controls (NUL above all: PostgreSQL refuses it in text
# and in JSONB), DEL, and lone surrogates (not UTF-8)
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def text_problem(value: Any, max_len: int, nonempty: bool = True) -> str | None:
    """Why `value` cannot be a text field of at most `max_len` characters (None when it can): the one
    rule for lane names and the other free texts, used by `validate` and by the unit's config."""
    if not isinstance(value, str):
        return f"must be text, not {type(value).__name__}"
    if nonempty and not value.strip():
        return "must not be empty"
    if len(value) > max_len:
        return f"at most {max_len} characters, got {len(value)}"
    bad = _UNSAFE.search(value)
    if bad:
        return f"control character U+{ord(bad.group()):04X} not allowed"
    return None


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


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _text(payload: dict[str, Any], key: str, max_len: int, nonempty: bool = True) -> None:
    problem = text_problem(payload[key], max_len, nonempty)
    if problem:
        raise ReadInvalid(f"{key}: {problem}")


def _labels(payload: dict[str, Any], key: str, numbers: bool) -> None:
    """`model` (text values) or `trigger` (text, finite numbers, true/false or null): a flat object of at
    most ENTRIES_MAX keys, every text within LABEL_MAX and free of control characters."""
    doc = payload[key]
    if len(doc) > ENTRIES_MAX:
        raise ReadInvalid(f"{key}: at most {ENTRIES_MAX} entries, got {len(doc)}")
    for k, v in doc.items():
        problem = text_problem(k, LABEL_MAX)
        if problem:
            raise ReadInvalid(f"{key}: key {k[:LABEL_MAX]!r}: {problem}")
        if isinstance(v, str):
            problem = text_problem(v, LABEL_MAX, nonempty=False)
        elif not numbers:
            problem = f"must be text, not {type(v).__name__}"
        elif v is None or isinstance(v, bool) or _finite(v):
            problem = None
        else:
            problem = "must be text, a finite number, true/false or null"
        if problem:
            raise ReadInvalid(f"{key}.{k}: {problem}")


def validate(payload: dict[str, Any]) -> Read:
    """Check a payload against schema v1 and every limit above; raise ReadInvalid naming the first bad
    field. A read that passes fits every column and JSON value of the store."""
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
    known = set(Read.__dataclass_fields__)
    extra = set(payload) - known
    if extra:
        raise ReadInvalid(f"{sorted(extra)[0][:LABEL_MAX]!r}: unknown field")
    if not isinstance(payload.get("context_jpeg_b64"), (str, type(None))):
        raise ReadInvalid(f"context_jpeg_b64: wrong type {type(payload['context_jpeg_b64']).__name__}")
    try:
        if len(payload["read_id"]) != READ_ID_LEN:
            raise ValueError
        uuid.UUID(payload["read_id"])
    except ValueError:
        raise ReadInvalid("read_id: not a UUID") from None
    for key in ("unit_id", "site"):
        if not ID_RE.fullmatch(payload[key]):
            raise ReadInvalid(f"{key}: 1-{ID_MAX} of A-Z a-z 0-9 . _ - (starting with a letter or digit)")
    _text(payload, "lane", LANE_MAX)
    try:
        parse_utc(payload["captured_at"])
    except ValueError as exc:
        raise ReadInvalid(f"captured_at: {exc}") from None
    if not PLATE_RE.fullmatch(payload["plate"]):
        raise ReadInvalid(f"plate: must be 1-{PLATE_MAX} of A-Z0-9")
    if not REGION_RE.fullmatch(payload["region"]):
        raise ReadInvalid(f"region: at most {REGION_MAX} of A-Z a-z 0-9 _ -")
    if not _finite(payload["confidence"]) or not 0.0 <= payload["confidence"] <= 1.0:
        raise ReadInvalid("confidence: must be within 0..1")
    if payload["direction"] not in DIRECTIONS:
        raise ReadInvalid(f"direction: one of {', '.join(DIRECTIONS)}")
    if len(payload["box"]) != 4 or not all(_finite(v) for v in payload["box"]):
        raise ReadInvalid("box: four finite numbers x0, y0, x1, y1")
    if len(payload["candidates"]) > CANDIDATES_MAX:
        raise ReadInvalid(f"candidates: at most {CANDIDATES_MAX}, got {len(payload['candidates'])}")
    for i, c in enumerate(payload["candidates"]):
        if (not isinstance(c, dict) or set(c) != {"plate", "score"} or not isinstance(c["plate"], str)
                or not PLATE_RE.fullmatch(c["plate"])
                or not _finite(c["score"]) or not 0.0 <= c["score"] <= 1.0):
            raise ReadInvalid(f"candidates[{i}]: needs plate (1-{PLATE_MAX} of A-Z0-9) and score (0..1), nothing else")
    _labels(payload, "model", numbers=False)
    _labels(payload, "trigger", numbers=True)
    return Read(**payload)
