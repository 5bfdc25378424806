"""The uplink and heartbeat built from an [uplink] table (`unit.config.UplinkConfig`), end to end against a
real store."""
from __future__ import annotations

import json
import threading
from datetime import timedelta

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from central import units
from unit import heartbeat, hotlist, uplink
from unit.buffer import SealedBuffer
from unit.config import UplinkConfig
from unit.identity import enroll
from unit.keys import load_ed25519_private
from wire.seal import load_sealing_public
from central_fixtures import EnrolledUnit, fill_buffer


def test_uplink_and_heartbeat_from_config(central, tmp_path):
    key = Ed25519PrivateKey.generate()
    key_path = tmp_path / "identity.pem"
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    token, _ = units.make_token(central.store.engine, "gate-1", timedelta(minutes=5))
    answer = enroll(central.url, token, "unit-c", load_ed25519_private(key_path))
    section = UplinkConfig(url=central.url, identity_key_path=str(key_path), batch_size=7,
                           central_signing_key=answer["signing_public_key"], backoff_base_s=0.05, idle_s=0.05)
    assert central.store.cli("hotlist", "add", "4XYZ999", "--reason", "wanted", "--note", "test",
                             "--purpose", "wanted_vehicle", "--case", "DR-1") == 0

    with SealedBuffer(tmp_path / "buffer.sqlite") as buffer:
        unit = EnrolledUnit("unit-c", answer["site"], key, load_sealing_public(answer["sealing_public_key"]))
        ids = fill_buffer(buffer, unit, 20)
        up = uplink.from_config(section, "unit-c", buffer, state_path=tmp_path / "uplink.json")
        assert up.batch_size == 7
        up.run(threading.Event(), until_empty=True)
        assert sorted(central.store.read_ids()) == sorted(ids)
        assert uplink.read_state(tmp_path / "uplink.json")["stored"] == 20

        hb = heartbeat.from_config(section, up, heartbeat.collector(buffer, up, {"unit": "0.1.0"}),
                                   tmp_path / "hotlist.txt")
        assert hb.beat(), hb.last_error
    assert [(e.pattern, e.label) for e in hotlist.load(hb.hotlist.path).entries] == [("4XYZ999", "test")]
    with central.store.engine.connect() as conn:
        body = conn.exec_driver_sql("SELECT body FROM heartbeats").scalar_one()
    body = body if isinstance(body, dict) else json.loads(body)
    assert body["queue"]["depth"] == 0 and body["queue"]["sent"] == 20
    assert body["uplink"]["stored"] == 20 and body["versions"] == {"unit": "0.1.0"}
