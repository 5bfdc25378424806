"""One set of limits for a read, from the unit's config to the store's columns (`wire.read`).

`wire.read.validate` checks every limit; the unit's config refuses a unit id, site or lane name that
reads could not carry; the unit fixes up or names what it would otherwise send in vain; and against a
real central store on loopback (SQLite and PostgreSQL), a read that breaks a limit is rejected on its
own and quarantined by the unit, while the reads behind it are delivered.
"""
from __future__ import annotations

import threading
import uuid

import numpy as np
import pytest

from unit.buffer import SealedBuffer
from unit.burst import Trigger
from unit.config import ConfigError, load
from unit.health import Health
from unit.pipeline import ModelHolder, RecognitionStage, _Burst, _Seen
from unit.recognise import Candidate, PlateRead
from unit.uplink import Uplink
from unit.vote import vote
from wire.read import CANDIDATES_MAX, LANE_MAX, ReadInvalid, validate
from central_fixtures import enrol_unit, fill_buffer, make_read
from test_unit_inputs import write_config  # (tests/ is on sys.path)


def payload(**overrides):
    doc = {"schema_version": 1, "read_id": str(uuid.uuid4()), "unit_id": "gate3-east", "site": "port-north",
           "lane": "in", "direction": "in", "captured_at": "2026-03-01T12:00:00.000Z", "plate": "7ABC123",
           "region": "us-ca", "confidence": 0.9, "candidates": [{"plate": "7ABC123", "score": 0.9}],
           "box": [0, 0, 10, 10], "model": {"detector": "d1", "reader": "r1"},
           "trigger": {"sensor": "loop:GPIO17", "kind": "sensor", "frames": 5, "ok": True, "none": None},
           "crop_jpeg_b64": ""}
    doc.update(overrides)
    return doc


@pytest.mark.parametrize("override, field", [
    ({"lane": "L" * (LANE_MAX + 7)}, "lane"),                       # 39 characters: the column holds 32
    ({"lane": ""}, "lane"),
    ({"lane": "in\x00"}, "lane"),
    ({"region": "r" * 17}, "region"),
    ({"region": "us\x00"}, "region"),
    ({"unit_id": "u" * 65}, "unit_id"),
    ({"unit_id": "gate 3"}, "unit_id"),
    ({"site": "port\nnorth"}, "site"),
    ({"plate": "7ABC123\n"}, "plate"),
    ({"model": {"reader": "r1\x00"}}, "model.reader"),
    ({"model": {"reader": "r" * 65}}, "model.reader"),
    ({"model": {"reader": 3}}, "model.reader"),
    ({"model": {f"k{i}": "v" for i in range(17)}}, "model"),
    ({"trigger": {"sensor": "loop\x00"}}, "trigger.sensor"),
    ({"trigger": {"nested": {"a": 1}}}, "trigger.nested"),
    ({"trigger": {"t": float("nan")}}, "trigger.t"),
    ({"candidates": [{"plate": "7ABC\x00", "score": 0.5}]}, "candidates[0]"),
    ({"candidates": [{"plate": "7ABC123", "score": 0.5, "extra": "x"}]}, "candidates[0]"),
    ({"candidates": [{"plate": "7ABC123", "score": float("inf")}]}, "candidates[0]"),
    ({"candidates": [{"plate": "A1", "score": 0.1}] * (CANDIDATES_MAX + 1)}, "candidates"),
    ({"confidence": float("nan")}, "confidence"),
    ({"box": [0, 0, float("inf"), 10]}, "box"),
    ({"context_jpeg_b64": 7}, "context_jpeg_b64"),
    ({"read_id": "{" + str(uuid.uuid4()) + "}"}, "read_id"),
])
def test_validate_checks_every_limit_and_names_the_field(override, field):
    assert validate(payload()).lane == "in"               # the base read is fine
    with pytest.raises(ReadInvalid) as exc:
        validate(payload(**override))
    assert str(exc.value).startswith(field), str(exc.value)


@pytest.mark.parametrize("old, new, key", [
    ('name = "in"', f'name = "{"L" * 39}"', "lanes[0].name"),
    ('name = "in"', 'name = "in\\u0000"', "lanes[0].name"),
    ('name = "in"', 'name = "in\\u001b[2J"', "lanes[0].name"),
    ('unit_id = "gate3-east"', f'unit_id = "{"u" * 65}"', "unit_id"),
    ('unit_id = "gate3-east"', 'unit_id = "gate 3 east"', "unit_id"),
    ('site = "port-north"', 'site = "port/north"', "site"),
])
def test_unit_config_refuses_names_the_store_would_refuse(tmp_path, old, new, key):
    with pytest.raises(ConfigError) as exc:
        load(write_config(tmp_path, **{old: new}))
    assert str(exc.value).startswith(key + ":"), str(exc.value)
    load(write_config(tmp_path, **{old: old.replace("in", "L" * LANE_MAX) if "name" in old else old}))


def test_unit_fixes_up_odd_recogniser_output_before_sealing(tmp_path):
    """Candidates that are not plates, a region guess of another shape and model labels with control
    characters are cut to the contract by the unit, so the read it seals passes the store's check."""
    cfg = load(write_config(tmp_path))
    health = Health("u")
    models = ModelHolder(cfg.recognition, health, factory=lambda: None)
    models.versions = {"detector": "det\x00-1", "reader": "r" * 200}
    buf = SealedBuffer(tmp_path / "b.sqlite")
    stage = RecognitionStage(cfg, models, buf, health)
    crop = np.full((20, 60, 3), 128, np.uint8)
    cands = [Candidate("7ABC123", 0.8), Candidate("7ABC1234567XYZ", 0.1), Candidate("", 0.05),
             Candidate("7A8C123", 0.04)]
    reads = [PlateRead((10, 10, 70, 30), "7ABC123", 0.8, cands, 0.9, "region-name-far-too-long", crop)
             for _ in range(3)]
    v = vote(reads, top_n=CANDIDATES_MAX)
    burst = _Burst(Trigger(str(uuid.uuid4()), "in", "loop:GPIO17\x07", "sensor", 1.7e9), cfg.lanes[0], 0.0,
                   frames=3, recognised=3, seen=[_Seen(r, 1.7e9 + i, None) for i, r in enumerate(reads)])
    read = stage._build(burst, v)
    checked = validate(read.to_payload())
    assert checked.region == ""
    assert [c["plate"] for c in checked.candidates] == ["7ABC123", "7A8C123"]
    assert checked.model["detector"] == "det-1" and len(checked.model["reader"]) == 64
    assert stage.store(read) and buf.stats()["depth"] == 1
    buf.close()


def uplink_for(url, unit, buffer) -> Uplink:
    return Uplink(url, unit.unit_id, unit.key, buffer, batch_size=10, backoff_base_s=0.05, backoff_cap_s=0.3,
                  idle_s=0.05, timeout=(1.0, 3.0))


@pytest.mark.parametrize("bad", [
    {"lane": "L" * 39},                                          # the unit config accepted it before
    {"region": "r" * 17},
    {"model": {"detector": "d1", "reader": "r\x00"}},
    {"candidates": [{"plate": "7ABC123", "score": 0.9}, {"plate": "7AB\x00", "score": 0.1}]},
], ids=["lane-39", "region-17", "nul-in-model", "nul-in-candidate"])
def test_five_reads_behind_a_read_the_store_refuses_are_delivered(central, tmp_path, bad):
    """The bad read is at the head of the queue; on PostgreSQL it used to turn the whole batch into a
    500, retried for ever. Now it is rejected alone, quarantined with the reason, the rest stored."""
    unit = enrol_unit(central.url, central.store)
    buffer = SealedBuffer(tmp_path / "buffer.sqlite")
    odd = make_read(unit, **bad)
    buffer.put(*odd)
    good = fill_buffer(buffer, unit, 5)
    uplink = uplink_for(central.url, unit, buffer)
    stop = threading.Event()
    runner = threading.Thread(target=uplink.run, args=(stop, True), daemon=True)
    runner.start()
    runner.join(20)
    stop.set()
    runner.join(5)
    try:
        assert sorted(central.store.read_ids()) == sorted(good), uplink.status()
        row = buffer.get(odd[0])
        assert row["state"] == "quarantined", uplink.status()
        assert row["reason"].split(":")[0].split(".")[0].split("[")[0] == next(iter(bad))
        st = buffer.stats()
        assert (st["depth"], st["quarantined"], st["sent"]) == (0, 1, 5)
        assert uplink.status()["rejected"] == 1
    finally:
        buffer.close()
