"""`UnitService` (what `alpr-unit run` runs) without a central store: an [uplink] that cannot start leaves
the unit running and storing reads, and says why in its health and in `alpr-unit status`."""
from __future__ import annotations

import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

from unit import status
from unit.commands.status import render
from unit.config import load
from unit.service import UnitService
from unit.sources.frames import ManualClock
from unit.sources.pushed import QueueSource
from wire import seal

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "unit" / "example-config.toml"


@pytest.fixture
def toml(tmp_path):
    central = X25519PrivateKey.generate()
    (tmp_path / "central-seal.pub").write_text(seal.sealing_public_b64(central.public_key()))
    text = (EXAMPLE.read_text()
            .replace("/var/lib/alpr-unit/buffer.sqlite", str(tmp_path / "buf.sqlite"))
            .replace("/etc/alpr-unit/identity.key", str(tmp_path / "missing-identity.pem"))
            .replace("interval_s = 5", "interval_s = 0.2"))
    (tmp_path / "unit.toml").write_text(text)
    Device.pin_factory = MockFactory()
    yield tmp_path / "unit.toml"
    Device.pin_factory.reset()


def _run(cfg) -> UnitService:
    svc = UnitService(cfg, QueueSource(ManualClock()), live=False, recogniser_factory=lambda: _NoModel(), env={})
    svc.start()
    svc.unit.update_health()
    return svc


class _NoModel:
    def versions(self):
        return {"detector": "d0", "reader": "r0"}

    def read(self, image):
        return []


def test_example_config_names_the_base_url(toml):
    cfg = load(toml)
    assert cfg.uplink.url == "https://central.example.org:8443"      # the uplink appends /v1/reads itself


def test_uplink_without_identity_key_leaves_the_unit_running(toml):
    svc = _run(load(toml))
    try:
        part = svc.health.get("uplink")
        assert part["state"] == "error" and "missing-identity.pem" in part["detail"]
        assert svc.uplink is None and all(t.is_alive() for t in svc.unit._threads)
        assert any(p.startswith("uplink: error") for p in svc.health.snapshot()["problems"])
        st = status.collect(load(toml))
        assert st["uplink"]["state"] == "error" and "uplink: error" in render(st)
    finally:
        svc.stop()
    assert not [t for t in threading.enumerate() if t.name.startswith("unit-")]


def test_a_reads_url_is_refused_with_the_reason(toml):
    key = toml.parent / "id.pem"
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    key.write_bytes(Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    toml.write_text(toml.read_text().replace(str(toml.parent / "missing-identity.pem"), str(key))
                    .replace('url = "https://central.example.org:8443"', 'url = "https://central.example.org/api/v1/reads"'))
    svc = _run(load(toml))
    try:
        assert "base URL" in svc.health.get("uplink")["detail"]
    finally:
        svc.stop()


def test_no_uplink_url_means_reads_stay_in_the_buffer(toml):
    toml.write_text(toml.read_text().replace('url = "https://central.example.org:8443"', 'url = ""'))
    svc = _run(load(toml))
    try:
        assert svc.health.get("uplink")["state"] == "none"
        assert not [p for p in svc.health.snapshot()["problems"] if "uplink" in p]     # not a fault
        assert status.collect(load(toml))["uplink"]["state"] == "not configured"
    finally:
        svc.stop()


def test_an_unreachable_store_shows_as_offline_and_stop_is_prompt(toml):
    import socket
    import time
    key = toml.parent / "id.pem"
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    key.write_bytes(Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    with socket.socket() as s:                      # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    toml.write_text(toml.read_text().replace(str(toml.parent / "missing-identity.pem"), str(key))
                    .replace('url = "https://central.example.org:8443"', f'url = "http://127.0.0.1:{port}"')
                    + "backoff_base_s = 0.01\nbackoff_cap_s = 0.05\nidle_s = 0.05\n")
    cfg = load(toml)
    svc = _run(cfg)
    # a read waiting in the buffer makes the uplink try, fail, and back off
    from wire.times import utc_ms
    svc.unit.buffer.put("00000000-0000-4000-8000-000000000001", utc_ms(time.time()), {"v": 1, "ct": "AAAA"})
    end = time.monotonic() + 10
    while time.monotonic() < end and svc.health.get("uplink").get("state") != "offline":
        svc.unit.update_health()
        time.sleep(0.05)
    assert svc.health.get("uplink")["state"] == "offline"
    t0 = time.monotonic()
    svc.stop(drain_s=0.3)                            # gives up on the drain, keeps the read
    assert time.monotonic() - t0 < 5
    st = status.collect(cfg)
    assert st["buffer"]["depth"] == 1 and st["uplink"]["consecutive_failures"] >= 3
