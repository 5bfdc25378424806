"""Ingest, heartbeats, hot list and enrolment over real HTTP, on SQLite and PostgreSQL."""
from __future__ import annotations

import base64
from datetime import timedelta

import pytest
import requests
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from central import units
from central.schema import heartbeats, read_images, reads

pytest.register_assert_rewrite("central_fixtures")
from central_fixtures import JPEG, batch_body, enrol_unit, make_read
from unit import hotlist
from unit.heartbeat import Heartbeat, HotListPuller, system_facts
from unit.identity import enroll
from unit.uplink import SignedClient

pytest_plugins = ["central_fixtures"]


def post(central, unit, body: bytes) -> requests.Response:
    return SignedClient(central.url, unit.unit_id, unit.key).request(
        "POST", "/v1/reads", body, {"Content-Type": "application/json"})


def test_each_read_gets_its_own_verdict(central):
    unit = enrol_unit(central.url, central.store)
    good = make_read(unit)
    other_key = make_read(unit, recipient=X25519PrivateKey.generate().public_key())
    bad_plate = make_read(unit, plate="7abc123")
    not_mine = make_read(unit, unit_id="unit-9")
    wrong_site = make_read(unit, site="gate-9")
    resp = post(central, unit, batch_body([good, other_key, bad_plate, not_mine, wrong_site, good]))
    assert resp.status_code == 200
    results = resp.json()["results"]
    assert [r["read_id"] for r in results] == [good[0], other_key[0], bad_plate[0], not_mine[0], wrong_site[0], good[0]]
    assert [r["status"] for r in results] == ["stored", "rejected", "rejected", "rejected", "rejected", "duplicate"]
    assert results[1]["reason"] == "sealed to another central key"
    assert results[2]["reason"].startswith("plate:")
    assert results[3]["reason"].startswith("unit_id:")
    assert results[4]["reason"].startswith("site:")
    assert central.store.read_ids() == [good[0]]

    again = post(central, unit, batch_body([good]))
    assert again.json()["results"] == [{"read_id": good[0], "status": "duplicate"}]
    assert central.store.count() == 1


def test_stored_read_is_the_opened_read(central):
    unit = enrol_unit(central.url, central.store)
    rid, captured_at, env = make_read(unit, context_jpeg_b64=base64.b64encode(JPEG).decode())
    assert post(central, unit, batch_body([(rid, captured_at, env)])).status_code == 200
    with central.store.engine.connect() as conn:
        row = conn.execute(sa.select(reads).where(reads.c.read_id == rid)).mappings().one()
        images = dict(conn.execute(sa.select(read_images.c.kind, read_images.c.jpeg)
                                   .where(read_images.c.read_id == rid)).all())
    assert (row["unit_id"], row["site"], row["plate"], row["region"], row["direction"]) == \
        ("unit-1", "gate-1", "7ABC123", "us-ca", "in")
    assert row["candidates"][0] == {"plate": "7ABC123", "score": 0.93}
    assert row["box"] == [10, 20, 110, 50] and row["model"]["reader"] == "r1"
    assert row["captured_at"].strftime("%Y-%m-%dT%H:%M:%S") == captured_at[:19]
    assert images == {"crop": JPEG, "context": JPEG}


def test_read_id_of_another_unit_is_not_taken_over(central):
    a = enrol_unit(central.url, central.store, "unit-a")
    b = enrol_unit(central.url, central.store, "unit-b")
    rid, cap, env = make_read(a)
    assert post(central, a, batch_body([(rid, cap, env)])).json()["results"][0]["status"] == "stored"
    clash = make_read(b, read_id=rid)
    result = post(central, b, batch_body([clash])).json()["results"][0]
    assert result["status"] == "rejected" and "another unit" in result["reason"]
    assert central.store.count() == 1


def test_heartbeat_and_hot_list_with_etag(central, tmp_path):
    unit = enrol_unit(central.url, central.store)
    client = SignedClient(central.url, unit.unit_id, unit.key)
    signing = central.store.keys.signing.public_key()
    hot = HotListPuller(client, tmp_path / "hotlist.txt", signing)
    beat = Heartbeat(client, lambda: {"queue": {"depth": 3, "dropped": 1}, **system_facts(tmp_path)}, hot)

    assert beat.beat()
    assert len(hotlist.load(hot.path)) == 0 and hot.etag
    assert central.store.cli("hotlist", "add", "7abc123", "--reason", "stolen_vehicle", "--note", "stolen, #2",
                             "--purpose", "stolen_vehicle", "--case", "DR-1") == 0
    assert beat.beat()                                   # the answer's ETag differs: pulled
    loaded = hotlist.load(hot.path)                      # what the unit service reads
    assert [(e.pattern, e.label) for e in loaded.entries] == [("7ABC123", "stolen 2")]
    assert loaded.match("7ABC123") is not None
    assert hot.pull() is False                           # If-None-Match: 304

    raw = client.request("GET", "/v1/hotlist")
    assert raw.status_code == 200 and raw.headers["ETag"] == hot.etag
    with central.store.engine.connect() as conn:
        rows = conn.execute(sa.select(heartbeats.c.unit_id, heartbeats.c.queue_depth, heartbeats.c.dropped,
                                      heartbeats.c.body)).all()
    assert [(r.unit_id, r.queue_depth, r.dropped) for r in rows] == [("unit-1", 3, 1), ("unit-1", 3, 1)]
    assert "uptime_s" in rows[0].body and "sent_at" in rows[0].body
    listed = {u["unit_id"]: u for u in units.list_units(central.store.engine)}
    assert listed["unit-1"]["last_seen_at"] is not None


def test_hot_list_with_a_forged_signature_is_refused(central, tmp_path):
    unit = enrol_unit(central.url, central.store)
    client = SignedClient(central.url, unit.unit_id, unit.key)
    hot = HotListPuller(client, tmp_path / "hotlist.txt", Ed25519PrivateKey.generate().public_key())
    try:
        hot.pull()
        raise AssertionError("a hot list signed by another key was accepted")
    except RuntimeError as exc:
        assert "signature" in str(exc)
    assert not hot.path.exists()


def test_enrolment_token_is_one_time_and_checked(central):
    engine = central.store.engine
    token, _ = units.make_token(engine, "gate-1", timedelta(minutes=5))
    answer = enroll(central.url, token, "unit-1", Ed25519PrivateKey.generate())
    assert answer["sealing_key_id"] == central.store.keys.sealing_key_id
    assert answer["signing_public_key"] == central.store.keys.signing_public_b64
    for tok, unit_id, status in ((token, "unit-2", 403),                                  # spent
                                 (units.make_token(engine, "gate-1", timedelta(seconds=-1))[0], "unit-3", 403),  # expired
                                 ("nonsense", "unit-4", 403)):
        r = requests.post(central.url + "/v1/enroll", json={"token": tok, "unit_id": unit_id,
                          "public_key": base64.b64encode(b"k" * 32).decode()})
        assert r.status_code == status, r.text
    fresh, _ = units.make_token(engine, "gate-1", timedelta(minutes=5))
    r = requests.post(central.url + "/v1/enroll", json={"token": fresh, "unit_id": "unit-1",
                      "public_key": base64.b64encode(b"k" * 32).decode()})
    assert r.status_code == 409                                                           # id taken
    r = requests.post(central.url + "/v1/enroll", json={"token": fresh, "unit_id": "unit-5", "public_key": "xx"})
    assert r.status_code == 400
    assert [u["unit_id"] for u in units.list_units(engine)] == ["unit-1"]
    enroll(central.url, fresh, "unit-5", Ed25519PrivateKey.generate())                    # refusals kept it unspent


def test_openapi_is_served(central):
    doc = requests.get(central.url + "/openapi.json").json()
    assert {"/v1/reads", "/v1/heartbeat", "/v1/hotlist", "/v1/enroll"} <= set(doc["paths"])
    body = doc["paths"]["/v1/reads"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["reads"]
    assert requests.get(central.url + "/docs").status_code == 404


def test_a_heartbeat_holding_a_nul_is_refused_by_name_and_the_next_one_stored(central):
    """PostgreSQL's JSON refuses U+0000: the store answers 400 naming it (not a 500), on both databases."""
    unit = enrol_unit(central.url, central.store)
    client = SignedClient(central.url, unit.unit_id, unit.key)
    for body in (b'{"health": "ok\\u0000"}', b'{"facts": {"k\\u0000": 1}}', b'{"list": ["\\u0000"]}'):
        resp = client.request("POST", "/v1/heartbeat", body, {"Content-Type": "application/json"})
        assert resp.status_code == 400 and "NUL" in resp.json()["error"], (body, resp.text)
    ok = client.request("POST", "/v1/heartbeat", b'{"queue": {"depth": 2, "dropped": 0}}',
                        {"Content-Type": "application/json"})
    assert ok.status_code in (200, 204), ok.text
    with central.store.engine.connect() as conn:
        rows = conn.execute(sa.select(heartbeats.c.queue_depth)).all()
    assert [r.queue_depth for r in rows] == [2]
