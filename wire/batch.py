"""A batch of sealed reads from a unit (POST `wire.paths.READS`) and the store's answer.

    request  {"reads": [{"read_id": str, "captured_at": str, "envelope": <wire.seal envelope>}, ...]}
    answer   {"results": [{"read_id": str, "status": "stored" | "duplicate" | "rejected", "reason": str}, ...]}

Each read gets its own verdict, so one bad read never holds back the others:
- stored: new, now in the store;
- duplicate: this unit sent it before (a retry after a lost answer) - nothing is written twice;
- rejected: cannot be opened, fails the schema, claims another unit or site, or the store's database
  refuses it (a constraint or a column, read by read); `reason` says why.
A unit forgets a read only once it is stored or a duplicate, and quarantines a rejected one.
A request that is not this shape, or longer than the store takes, is refused whole: nothing is stored.
"""
from __future__ import annotations

from typing import Any, Iterable

from wire import jsondoc
from wire.seal import ENVELOPE_SCHEMA

STORED, DUPLICATE, REJECTED = "stored", "duplicate", "rejected"
VERDICTS = (STORED, DUPLICATE, REJECTED)
DELIVERED = frozenset({STORED, DUPLICATE})      # the unit may forget these


class BatchInvalid(ValueError):
    """The body is not a batch of reads."""


class BatchTooLong(BatchInvalid):
    """More reads than the store takes in one request."""


def item(read_id: str, captured_at: str, envelope: dict[str, Any]) -> dict[str, Any]:
    """One read as it travels: the clear read_id and capture time, and the sealed rest."""
    return {"read_id": read_id, "captured_at": captured_at, "envelope": envelope}


def request(items: Iterable[dict[str, Any]]) -> dict[str, Any]:
    return {"reads": list(items)}


def parse_request(body: bytes, max_reads: int) -> list[dict[str, Any]]:
    """The items of a request body; BatchInvalid (or BatchTooLong) says what is wrong with it."""
    try:
        doc = jsondoc.loads(body)
    except jsondoc.JsonTooDeep as exc:
        raise BatchInvalid(f"body: {exc}") from None
    except (ValueError, UnicodeDecodeError):
        raise BatchInvalid("body is not JSON") from None
    items = doc.get("reads") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        raise BatchInvalid("body must be an object with a list 'reads'")
    if len(items) > max_reads:
        raise BatchTooLong(f"batch of {len(items)} reads; at most {max_reads}")
    for i, it in enumerate(items):
        if not (isinstance(it, dict) and isinstance(it.get("read_id"), str) and it["read_id"]
                and isinstance(it.get("captured_at"), str) and isinstance(it.get("envelope"), dict)):
            raise BatchInvalid(f"reads[{i}]: needs read_id (str), captured_at (str), envelope (object)")
    return items


def verdict(read_id: str, status: str, reason: str | None = None) -> dict[str, str]:
    out = {"read_id": read_id, "status": status}
    if reason is not None:
        out["reason"] = reason
    return out


def response(results: list[dict[str, str]]) -> dict[str, Any]:
    return {"results": results}


def parse_response(doc: Any, sent: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The verdicts in an answer for the reads that were `sent`, by read_id (anything else in the
    answer is ignored). ValueError if the answer has no results list."""
    results = doc.get("results") if isinstance(doc, dict) else None
    if not isinstance(results, list):
        raise ValueError("answer without a results list")
    sent = set(sent)
    return {r["read_id"]: r for r in results if isinstance(r, dict) and r.get("read_id") in sent}


# JSON Schema of both, for the store's OpenAPI document
REQUEST_SCHEMA = {"type": "object", "required": ["reads"], "properties": {"reads": {"type": "array", "items": {
    "type": "object", "required": ["read_id", "captured_at", "envelope"],
    "properties": {"read_id": {"type": "string", "format": "uuid"}, "captured_at": {"type": "string"},
                   "envelope": ENVELOPE_SCHEMA}}}}}
RESPONSE_SCHEMA = {"type": "object", "properties": {"results": {"type": "array", "items": {
    "type": "object", "properties": {"read_id": {"type": "string"}, "status": {"enum": list(VERDICTS)},
                                     "reason": {"type": "string"}}}}}}
