"""Uplink against a real central store on loopback: nothing lost, nothing stored twice.

Every test drains a real `unit.buffer.SealedBuffer` through `unit.uplink.Uplink` and then compares
the ids the store holds with the ids the unit buffered. Runs on SQLite and on PostgreSQL.
"""
from __future__ import annotations

import base64
import json
import os
import threading
import time

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from central.config import Limits
from unit.buffer import SealedBuffer
from unit.uplink import Uplink
from central_fixtures import (DropProxy, Fault, ServeProcess, enrol_unit, fill_buffer,
                              make_read, run_uplink, start_central)
from hil.loopback import free_port


def uplink_for(url, unit, buffer, **kw) -> Uplink:
    opts = dict(batch_size=10, backoff_base_s=0.05, backoff_cap_s=0.3, idle_s=0.05, timeout=(1.0, 3.0))
    return Uplink(url, unit.unit_id, unit.key, buffer, **{**opts, **kw})


def drain(uplink: Uplink, seconds: float = 30.0) -> None:
    """Run the uplink until the buffer has nothing pending, `seconds` at most."""
    assert run_uplink(uplink, seconds), f"uplink still had reads pending after {seconds} s: {uplink.status()}"


def assert_exactly_once(store, buffer, ids) -> None:
    held = store.read_ids()
    assert len(held) == len(set(held)) == len(ids)
    assert set(held) == set(ids)
    stats = buffer.stats()
    assert (stats["depth"], stats["quarantined"], stats["sent"]) == (0, 0, len(ids))


@pytest.fixture
def buffer(tmp_path):
    b = SealedBuffer(tmp_path / "buffer.sqlite")
    yield b
    b.close()


def test_central_down_then_back_every_read_arrives_once(store, buffer):
    """Central is down when the unit starts, comes up, is SIGKILLed mid-drain, comes back."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    unit_server = ServeProcess(store, port)
    unit = enrol_unit(url, store)
    unit_server.kill()
    ids = fill_buffer(buffer, unit, 300)
    uplink = uplink_for(url, unit, buffer)
    stop = threading.Event()
    runner = threading.Thread(target=uplink.run, args=(stop,), daemon=True)
    runner.start()
    time.sleep(0.5)                                         # down: every attempt is refused
    assert uplink.status()["state"] == "backing_off" and buffer.stats()["depth"] == 300

    server = ServeProcess(store, port)
    deadline = time.monotonic() + 30
    while store.count() < 30:
        assert time.monotonic() < deadline, "nothing arrived after central came up"
        time.sleep(0.01)
    server.kill()                                           # mid-drain, maybe mid-transaction
    at_kill = buffer.stats()["depth"]
    assert at_kill > 0, "the drain finished before the kill; the test proved nothing"
    time.sleep(0.5)
    assert buffer.stats()["depth"] > 0

    server = ServeProcess(store, port)
    try:
        while buffer.stats()["depth"] > 0:
            assert time.monotonic() < deadline + 30, f"not drained: {uplink.status()}"
            time.sleep(0.05)
    finally:
        stop.set()
        runner.join(5)
        server.kill()
    assert_exactly_once(store, buffer, ids)


def test_error_and_slow_answers_lose_nothing_and_double_nothing(store, buffer):
    central = start_central(store)
    try:
        unit = enrol_unit(central.url, store)
        ids = fill_buffer(buffer, unit, 60)
        central.app.plan.extend([
            Fault("before", 503, headers={"Retry-After": "1"}),   # unavailable, nothing done
            None,                                                  # batch 1 stored
            Fault("delay", seconds=1.0),                           # batch 2 stored, answer after the unit gave up
            None,                                                  # batch 2 again: duplicate
            Fault("after", 500),                                   # batch 3 stored, then crashed answering
            None,                                                  # batch 3 again: duplicate
            Fault("before", 500),                                  # nothing done
        ])
        uplink = uplink_for(central.url, unit, buffer, timeout=(1.0, 0.5))
        drain(uplink)
        assert_exactly_once(store, buffer, ids)
        log = central.app.log
        statuses = [s for _, s in log]
        assert statuses[0] == 503 and statuses.count(500) == 2
        assert log[1][0] - log[0][0] >= 0.95                       # Retry-After honoured
        status = uplink.status()
        assert status["duplicate"] == 20                           # the two batches stored but not heard
        assert status["stored"] == 40 and status["rejected"] == 0
    finally:
        central.server.stop()


def test_connection_cut_mid_response_gives_duplicate_not_double(store, buffer):
    central = start_central(store)
    proxy = DropProxy(central.server.port)
    try:
        unit = enrol_unit(central.url, store)
        ids = fill_buffer(buffer, unit, 50)
        proxy.plan.extend([True, False, False, True, False, True])   # cut 3 answers of 3 batches
        uplink = uplink_for(proxy.url, unit, buffer)
        drain(uplink)
        assert proxy.dropped == 3
        assert_exactly_once(store, buffer, ids)
        assert uplink.status()["duplicate"] == 30
    finally:
        proxy.close()
        central.server.stop()


def test_rate_limited_uplink_waits_for_retry_after(store, buffer):
    central = start_central(store, Limits(rate_per_s=2.0, rate_burst=2))
    try:
        unit = enrol_unit(central.url, store)                       # enrolment is not rate limited
        ids = fill_buffer(buffer, unit, 60)                         # 6 batches against 2/s, burst 2
        drain(uplink_for(central.url, unit, buffer))
        assert_exactly_once(store, buffer, ids)
        log = central.app.log
        limited = [i for i, (_, s) in enumerate(log) if s == 429]
        assert limited, "the rate limit never answered 429"
        for i in limited:
            assert log[i + 1][0] - log[i][0] >= 0.95, "retried before Retry-After"
    finally:
        central.server.stop()


def test_rejected_reads_are_quarantined_with_reason(central, buffer, tmp_path):
    unit = enrol_unit(central.url, central.store)
    good = fill_buffer(buffer, unit, 5)
    foreign = make_read(unit, recipient=X25519PrivateKey.generate().public_key())
    invalid = make_read(unit, confidence=2.0)
    for r in (foreign, invalid):
        buffer.put(*r)
    state_path = tmp_path / "uplink.json"
    uplink = uplink_for(central.url, unit, buffer, state_path=state_path)
    drain(uplink)
    assert sorted(central.store.read_ids()) == sorted(good)
    assert buffer.get(foreign[0])["state"] == "quarantined"
    assert buffer.get(foreign[0])["reason"] == "sealed to another central key"
    assert buffer.get(invalid[0])["reason"].startswith("confidence:")
    assert buffer.stats()["quarantined"] == 2 and buffer.pending() == []
    state = json.loads(state_path.read_text())
    assert (state["stored"], state["rejected"], state["state"]) == (5, 2, "idle")
    assert state["last_success_at"]


def test_413_halves_the_batch_and_quarantines_a_read_too_large_alone(store, buffer):
    central = start_central(store, Limits(max_batch_reads=4, max_body_bytes=12_000))
    try:
        unit = enrol_unit(central.url, store)
        ids = fill_buffer(buffer, unit, 9)
        huge = make_read(unit, context_jpeg_b64=base64.b64encode(b"\xff\xd8" + os.urandom(16_000)).decode())
        buffer.put(*huge)
        uplink = uplink_for(central.url, unit, buffer, batch_size=10)
        drain(uplink)
        assert sorted(store.read_ids()) == sorted(ids)
        assert "413" in buffer.get(huge[0])["reason"]
        assert 413 in [s for _, s in central.app.log]
    finally:
        central.server.stop()


def test_revoked_unit_keeps_its_reads(central, buffer):
    unit = enrol_unit(central.url, central.store)
    fill_buffer(buffer, unit, 5)
    assert central.store.cli("units", "revoke", unit.unit_id) == 0
    uplink = uplink_for(central.url, unit, buffer)
    stop = threading.Event()
    t = threading.Thread(target=uplink.run, args=(stop,), daemon=True)
    t.start()
    time.sleep(0.3)
    stop.set()
    t.join(5)
    assert buffer.stats()["depth"] == 5 and central.store.count() == 0
    status = uplink.status()
    assert (status["state"], status["last_status"]) == ("refused", 403) and status["consecutive_failures"] >= 2


def test_unit_clock_off_is_corrected_from_the_stores_answer(central, buffer):
    unit = enrol_unit(central.url, central.store)
    ids = fill_buffer(buffer, unit, 3)
    uplink = uplink_for(central.url, unit, buffer)
    uplink.client.clock_offset_s = -900.0                  # as if the unit's clock were 15 min behind
    first = uplink.push_once()
    assert first.status == 401 and abs(uplink.client.clock_offset_s) < 5
    assert uplink.push_once().stored == 3
    assert sorted(central.store.read_ids()) == sorted(ids)
