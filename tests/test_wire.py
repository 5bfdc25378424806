"""The wire contract's pure parts: times, patterns, the batch shape, and limits the store's columns hold."""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from central import schema
from unit import hotlist
from wire import batch, patterns
from wire.read import (DIRECTIONS, ID_MAX, ID_RE, LANE_MAX, PLATE_MAX, PLATE_RE, READ_ID_LEN, REGION_MAX, ReadInvalid,
                       validate)
from wire.times import aware, iso, parse_utc, utc_ms


def test_one_time_format_both_ways():
    assert utc_ms(0.25) == "1970-01-01T00:00:00.250Z"
    moment = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=timezone.utc)
    assert iso(moment) == "2026-03-01T12:00:00.123Z"
    assert iso(moment.replace(tzinfo=None)) == "2026-03-01T12:00:00.123Z"          # naive is UTC (SQLite)
    assert iso(moment.astimezone(timezone(timedelta(hours=-8)))) == "2026-03-01T12:00:00.123Z"
    assert iso(None) is None and aware(None) is None
    assert parse_utc(iso(moment)) == moment.replace(microsecond=123000)
    assert parse_utc(utc_ms(1.5e9)).timestamp() == 1.5e9
    for bad in ("2026-03-01T12:00:00+00:00", "yesterday Z", "", None):
        with pytest.raises(ValueError):
            parse_utc(bad)


def test_pattern_language_is_one_on_both_sides():
    assert patterns.to_like("7AB?12*") == "7AB_12%"
    assert patterns.to_like("A%B_C\\") == "A\\%B\\_C\\\\"
    assert patterns.check("7ab**c", 2) == "7AB*C"
    assert patterns.to_regex("7AB?12*").fullmatch("7ABX12") and not patterns.to_regex("7AB?12*").fullmatch("7AB12")
    for bad, why in (("*?", "known characters"), ("7AB%", "1-12 of"), ("7ABCDEFGHJK", "at most 10"),
                     ("7ABCDEFGHJKLM*", "1-12 of")):
        with pytest.raises(ValueError, match=why):
            patterns.check(bad)
    # the unit's hot-list file reads the same language (its format also drops separators)
    listed = hotlist.parse("7ab-c12*, stolen\n?ABC 123\n# comment\n")
    assert [(e.pattern, e.label) for e in listed.entries] == [("7ABC12*", "stolen"), ("?ABC123", "line 2")]
    assert listed.match("7ABC123").label == "stolen" and listed.match("8ABC123").label == "line 2"
    assert listed.match("7ABD123") is None
    with pytest.raises(ValueError, match=r"^hot list line 2: plate '\*\?'"):
        hotlist.parse("7ABC123\n*?\n")
    with pytest.raises(ValueError, match="line 1: .*at most 10"):
        hotlist.parse("7ABCDEFGHJK\n")                 # a whole plate longer than any plate never matches


def test_batch_request_and_answer_shapes():
    env = {"v": 1, "kid": "k", "epk": "e", "nonce": "n", "ct": "c"}
    rid = str(uuid.uuid4())
    body = json.dumps(batch.request([batch.item(rid, "2026-03-01T12:00:00.000Z", env)])).encode()
    assert batch.parse_request(body, 1) == [{"read_id": rid, "captured_at": "2026-03-01T12:00:00.000Z", "envelope": env}]
    with pytest.raises(batch.BatchTooLong, match="at most 0"):
        batch.parse_request(body, 0)
    for bad, why in ((b"{", "not JSON"), (b"[]", "list 'reads'"), (b'{"reads": [{"read_id": ""}]}', r"reads\[0\]"),
                     (b'{"reads": [{"read_id": "a", "captured_at": "t", "envelope": []}]}', r"reads\[0\]")):
        with pytest.raises(batch.BatchInvalid, match=why) as exc:
            batch.parse_request(bad, 10)
        assert not isinstance(exc.value, batch.BatchTooLong)
    answer = batch.response([batch.verdict("a", batch.STORED), batch.verdict("b", batch.REJECTED, "plate: bad"),
                             batch.verdict("x", batch.DUPLICATE), "junk"])
    assert batch.parse_response(answer, ["a", "b", "c"]) == {
        "a": {"read_id": "a", "status": "stored"}, "b": {"read_id": "b", "status": "rejected", "reason": "plate: bad"}}
    with pytest.raises(ValueError):
        batch.parse_response({"results": "nope"}, ["a"])
    assert batch.DELIVERED == {batch.STORED, batch.DUPLICATE} and batch.REJECTED not in batch.DELIVERED


def _length(table, column: str) -> int:
    return table.c[column].type.length


def test_what_the_contract_accepts_fits_the_stores_columns():
    """Every text a valid read, enrolment or hot-list entry can carry fits the column that stores it."""
    assert len(str(uuid.uuid4())) == READ_ID_LEN == _length(schema.reads, "read_id") == _length(schema.alerts, "read_id")
    assert PLATE_RE.fullmatch("A" * PLATE_MAX) and not PLATE_RE.fullmatch("A" * (PLATE_MAX + 1))
    for table in (schema.reads, schema.alerts):
        assert _length(table, "plate") >= PLATE_MAX
    for table in (schema.hotlist_entries, schema.alerts):
        assert _length(table, "pattern") >= patterns.PATTERN_MAX
    assert _length(schema.reads, "direction") >= max(map(len, DIRECTIONS))
    assert ID_RE.fullmatch("u" * ID_MAX) and not ID_RE.fullmatch("u" * (ID_MAX + 1))
    for table, column in ((schema.units, "unit_id"), (schema.units, "site"), (schema.reads, "unit_id"),
                          (schema.reads, "site"), (schema.enroll_tokens, "site"), (schema.alerts, "site")):
        assert _length(table, column) == ID_MAX, (table.name, column)
    assert (_length(schema.reads, "lane"), _length(schema.reads, "region")) == (LANE_MAX, REGION_MAX)


def test_validation_names_the_time_field_problem():
    payload = {"schema_version": 1, "read_id": str(uuid.uuid4()), "unit_id": "u", "site": "s", "lane": "1",
               "direction": "in", "captured_at": "2026-03-01 12:00", "plate": "7ABC123", "region": "us-ca",
               "confidence": 0.9, "candidates": [], "box": [0, 0, 1, 1], "model": {}, "trigger": {},
               "crop_jpeg_b64": ""}
    with pytest.raises(ReadInvalid, match="not ISO-8601 UTC ending in Z"):
        validate(payload)
    assert validate({**payload, "captured_at": "2026-03-01T12:00:00.000Z"}).plate == "7ABC123"
