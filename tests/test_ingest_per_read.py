"""Each read of a batch is stored or rejected on its own, even when the database itself refuses one.

`wire.read.validate` keeps every read that reaches the database inside the columns, so to make the
database refuse a read that passes the contract the test installs a refusal of its own: a CHECK
constraint on PostgreSQL, a trigger on SQLite, both refusing one plate. A real unit uplink then sends
the refused read at the head of its queue with five good reads behind it (SQLite and PostgreSQL).
Also: a read at every maximum the contract allows is stored, with its alert, on both databases.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager

import pytest
import requests

from central import hotlist
from central.audit import Principal
from unit.buffer import SealedBuffer
from unit.uplink import Uplink
from wire import batch, signing
from wire.paths import READS
from wire.read import CANDIDATES_MAX, ENTRIES_MAX, ID_MAX, LABEL_MAX, LANE_MAX, PLATE_MAX, REGION_MAX

pytest.register_assert_rewrite("central_fixtures")
from central_fixtures import batch_body, enrol_unit, fill_buffer, make_read  # noqa: E402

pytest_plugins = ["central_fixtures"]
REFUSED_PLATE = "REFUSE9"


@contextmanager
def database_refuses(store, plate: str):
    """The store's own database refuses any read of `plate` (removed again afterwards: the PostgreSQL
    database is shared by the session's tests)."""
    with store.engine.begin() as conn:
        if store.backend == "postgresql":
            conn.exec_driver_sql(f"ALTER TABLE reads ADD CONSTRAINT test_refuses CHECK (plate <> '{plate}')")
        else:
            conn.exec_driver_sql(f"CREATE TRIGGER test_refuses BEFORE INSERT ON reads WHEN NEW.plate = '{plate}' "
                                 "BEGIN SELECT RAISE(ABORT, 'plate refused by the test trigger'); END")
    try:
        yield
    finally:
        with store.engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE reads DROP CONSTRAINT test_refuses" if store.backend == "postgresql"
                                 else "DROP TRIGGER test_refuses")


def post(url: str, unit, body: bytes) -> requests.Response:
    return requests.post(url + READS, data=body, timeout=10,
                         headers={"Content-Type": "application/json",
                                  **signing.sign_headers(unit.key, unit.unit_id, "POST", READS, body)})


def test_a_read_the_database_refuses_is_rejected_alone(central):
    unit = enrol_unit(central.url, central.store)
    good = [make_read(unit) for _ in range(3)]
    bad = make_read(unit, plate=REFUSED_PLATE, candidates=[{"plate": REFUSED_PLATE, "score": 0.9}])
    with database_refuses(central.store, REFUSED_PLATE):
        answer = post(central.url, unit, batch_body([good[0], bad, *good[1:]]))
    assert answer.status_code == 200, answer.text
    results = batch.parse_response(answer.json(), [r[0] for r in [*good, bad]])
    assert [results[r[0]]["status"] for r in good] == ["stored"] * 3
    assert results[bad[0]]["status"] == "rejected"
    reason = results[bad[0]]["reason"]
    assert reason.startswith("the store's database refused it: ")
    assert ("test_refuses" if central.store.backend == "postgresql" else "refused by the test trigger") in reason
    assert REFUSED_PLATE not in reason                     # the statement's parameters are not echoed
    assert sorted(central.store.read_ids()) == sorted(r[0] for r in good)
    assert central.store.count("read_images") == 3          # the refused read's crop went with it


def test_five_reads_behind_a_read_the_database_refuses_are_delivered(central, tmp_path):
    unit = enrol_unit(central.url, central.store)
    buffer = SealedBuffer(tmp_path / "buffer.sqlite")
    odd = make_read(unit, plate=REFUSED_PLATE, candidates=[])
    buffer.put(*odd)
    good = fill_buffer(buffer, unit, 5)
    uplink = Uplink(central.url, unit.unit_id, unit.key, buffer, batch_size=10, backoff_base_s=0.05,
                    backoff_cap_s=0.3, idle_s=0.05, timeout=(1.0, 3.0))
    stop = threading.Event()
    runner = threading.Thread(target=uplink.run, args=(stop, True), daemon=True)
    try:
        with database_refuses(central.store, REFUSED_PLATE):
            runner.start()
            runner.join(20)
            stop.set()
            runner.join(5)
        assert sorted(central.store.read_ids()) == sorted(good), uplink.status()
        row = buffer.get(odd[0])
        assert row["state"] == "quarantined" and row["reason"].startswith("the store's database refused it")
        stats = buffer.stats()
        assert (stats["depth"], stats["quarantined"], stats["sent"]) == (0, 1, 5)
        assert uplink.status()["rejected"] == 1 and uplink.status()["stored"] == 5
    finally:
        stop.set()
        buffer.close()


def test_a_read_at_every_maximum_of_the_contract_is_stored_with_its_alert(central):
    """The wire limits, ingest validation and the columns agree: the longest of everything fits, on both
    databases, in `reads` and in the alert it raises (which copies lane, unit, site and plate)."""
    site = "s" * ID_MAX
    unit = enrol_unit(central.url, central.store, unit_id="u" * ID_MAX, site=site)
    plate = "7" * PLATE_MAX
    hotlist.add(central.store.engine, plate, reason="stolen_vehicle", purpose="stolen_vehicle",
                case_number="DR-" + "9" * 37, source="x" * 100, note="n" * 200, by=Principal("test", "test"))
    labels = {f"k{i:0{LABEL_MAX - 1}d}": "v" * LABEL_MAX for i in range(ENTRIES_MAX)}
    longest = make_read(unit, lane="L" * LANE_MAX, region="r" * REGION_MAX, plate=plate,
                        candidates=[{"plate": plate, "score": 0.5}] * CANDIDATES_MAX, model=labels, trigger=labels)
    answer = post(central.url, unit, batch_body([longest]))
    assert answer.status_code == 200 and answer.json()["results"][0]["status"] == "stored", answer.text
    with central.store.engine.connect() as conn:
        lane, region = conn.exec_driver_sql("SELECT lane, region FROM reads").one()
        alert = conn.exec_driver_sql("SELECT lane, unit_id, site, plate, case_number FROM alerts").one()
    assert (lane, region) == ("L" * LANE_MAX, "r" * REGION_MAX)
    assert tuple(alert) == ("L" * LANE_MAX, "u" * ID_MAX, site, plate, "DR-" + "9" * 37)
