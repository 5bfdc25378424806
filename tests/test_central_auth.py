"""Refusals: every bad request gets the right status and leaves nothing stored (SQLite and PostgreSQL)."""
from __future__ import annotations

import time

import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from central.config import Limits
from unit.uplink import SignedClient
from wire.signing import sign_headers
from central_fixtures import batch_body, enrol_unit, make_read, start_central

JSON = {"Content-Type": "application/json"}


def send(url: str, body: bytes, headers: dict[str, str]) -> requests.Response:
    return requests.post(url + "/v1/reads", data=body, headers={**JSON, **headers}, timeout=10)


def signed(unit, body: bytes, key=None, now=None, path="/v1/reads") -> dict[str, str]:
    return sign_headers(key or unit.key, unit.unit_id, "POST", path, body, now=now)


def test_unsigned_wrong_stale_unknown_and_tampered_are_401(central):
    unit = enrol_unit(central.url, central.store)
    body = batch_body([make_read(unit)])
    cases = {
        "unsigned": {},
        "missing signature": {k: v for k, v in signed(unit, body).items() if k != "X-Signature"},
        "wrong key": signed(unit, body, key=Ed25519PrivateKey.generate()),
        "stale": signed(unit, body, now=time.time() - 600),
        "from the future": signed(unit, body, now=time.time() + 600),
        "signed for another path": signed(unit, body, path="/v1/heartbeat"),
        "unknown unit": {**signed(unit, body), "X-Unit-Id": "unit-x"},
    }
    for name, headers in cases.items():
        r = send(central.url, body, headers)
        assert r.status_code == 401, (name, r.text)
    tampered = send(central.url, body.replace(b'"reads"', b'"reads" '), signed(unit, body))
    assert tampered.status_code == 401
    assert "server_time" in send(central.url, body, cases["stale"]).json()
    assert central.store.count() == 0


def test_replayed_request_is_refused(central):
    unit = enrol_unit(central.url, central.store)
    body = batch_body([make_read(unit)])
    headers = signed(unit, body)
    assert send(central.url, body, headers).status_code == 200
    replay = send(central.url, body, headers)
    assert replay.status_code == 401 and "replayed" in replay.json()["error"]
    assert central.store.count() == 1                       # only the original
    assert central.store.count("request_nonces") == 1


def test_malformed_bodies_are_400(central):
    unit = enrol_unit(central.url, central.store)
    good = make_read(unit)
    for body in (b"not json", b"[]", b'{"reads": {}}', b'{"reads": [{"read_id": "x"}]}',
                 batch_body([good])[:-2] + b',{"read_id": 5, "captured_at": "x", "envelope": {}}]}'):
        r = send(central.url, body, signed(unit, body))
        assert r.status_code == 400, (body, r.text)
    assert central.store.count() == 0


def test_oversized_body_and_batch_are_413(store):
    central = start_central(store, Limits(max_batch_reads=5, max_body_bytes=20_000))
    try:
        unit = enrol_unit(central.url, store)
        reads = [make_read(unit) for _ in range(6)]
        too_many = batch_body(reads)
        assert len(too_many) < 20_000
        r = send(central.url, too_many, signed(unit, too_many))
        assert r.status_code == 413 and "at most 5" in r.json()["error"]
        too_big = batch_body(reads[:2])[:-2] + b"," + b'"pad":"' + b"x" * 20_000 + b'"}'
        r = send(central.url, too_big, signed(unit, too_big))
        assert r.status_code == 413
        chunked = send(central.url, iter([too_big[:10_000], too_big[10_000:]]), signed(unit, too_big))
        assert chunked.status_code == 413                   # no Content-Length: counted while reading
        assert store.count() == 0
    finally:
        central.server.stop()


def test_revoked_unit_is_refused_from_then_on(central):
    unit = enrol_unit(central.url, central.store)
    client = SignedClient(central.url, unit.unit_id, unit.key)
    assert client.request("POST", "/v1/reads", batch_body([make_read(unit)]), JSON).status_code == 200
    assert central.store.cli("units", "revoke", unit.unit_id) == 0
    late = [make_read(unit)]
    r = client.request("POST", "/v1/reads", batch_body(late), JSON)
    assert r.status_code == 403 and "revoked" in r.json()["error"]
    assert client.post_json("/v1/heartbeat", {"uptime_s": 1}).status_code == 403
    assert client.request("GET", "/v1/hotlist").status_code == 403
    assert late[0][0] not in central.store.read_ids() and central.store.count() == 1
    assert central.store.count("heartbeats") == 0


def test_rate_limit_answers_429_with_retry_after(store):
    central = start_central(store, Limits(rate_per_s=0.5, rate_burst=2))
    try:
        unit = enrol_unit(central.url, store)
        client = SignedClient(central.url, unit.unit_id, unit.key)
        answers = [client.request("POST", "/v1/reads", batch_body([make_read(unit)]), JSON) for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 429]
        assert int(answers[2].headers["Retry-After"]) >= 1
        assert store.count() == 2
    finally:
        central.server.stop()
