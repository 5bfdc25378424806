"""TLS on `alpr-central serve`, with a private CA made here (cryptography): a unit that trusts the CA
through its config's `[uplink] ca_bundle` enrols and delivers its reads; a unit given another CA
refuses the store's certificate, says so in plain words, and keeps its reads (SQLite and PostgreSQL).
"""
from __future__ import annotations

import datetime as dt
import ipaddress
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID

from central import units
from unit.buffer import SealedBuffer
from unit.config import UplinkConfig
from unit.identity import enroll
from unit.uplink import from_config
from wire import seal

pytest.register_assert_rewrite("central_fixtures")
from central_fixtures import REPO, EnrolledUnit, fill_buffer, free_port  # noqa: E402

pytest_plugins = ["central_fixtures"]


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(folder: Path, cn: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn)).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    path = folder / f"{cn}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert, path


def make_server_cert(folder: Path, ca_key, ca_cert: x509.Certificate) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(_name("central.test")).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    cert_path, key_path = folder / "server.pem", folder / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    os.chmod(key_path, 0o600)
    return cert_path, key_path


@pytest.fixture
def tls_central(store, tmp_path):
    """`alpr-central serve --tls-cert --tls-key` as a real process, its certificate from a private CA."""
    ca_key, ca_cert, ca_path = make_ca(tmp_path, "Port Police Test CA")
    cert, key = make_server_cert(tmp_path, ca_key, ca_cert)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "central.cli", "serve", "--home", str(store.home), "--db", store.url,
                             "--port", str(port), "--log-level", "warning", "--tls-cert", str(cert), "--tls-key", str(key)],
                            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, start_new_session=True)
    url = f"https://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None, f"alpr-central serve exited with {proc.returncode}"
        try:
            if requests.get(url + "/policy", timeout=1, verify=str(ca_path)).status_code == 200:
                break
        except requests.RequestException:
            pass
        assert time.monotonic() < deadline, "alpr-central serve (TLS) did not answer within 30 s"
        time.sleep(0.1)
    yield url, ca_path
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=15)


def run_uplink(uplink, seconds: float) -> None:
    stop = threading.Event()
    t = threading.Thread(target=uplink.run, args=(stop, True), daemon=True)
    t.start()
    t.join(seconds)
    stop.set()
    t.join(5)


def test_a_unit_trusting_the_private_ca_enrols_and_delivers_over_tls(store, tls_central, tmp_path):
    url, ca_path = tls_central
    assert requests.get(url + "/policy", timeout=5, verify=str(ca_path)).status_code == 200
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(url + "/policy", timeout=5)              # the system's CAs do not know this one
    token, _ = units.make_token(store.engine, "gate-1", timedelta(minutes=10))
    key = Ed25519PrivateKey.generate()
    (tmp_path / "unit.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))
    answer = enroll(url, token, "unit-tls", key, ca_bundle=str(ca_path))
    unit = EnrolledUnit("unit-tls", answer["site"], key, seal.load_sealing_public(answer["sealing_public_key"]))
    buffer = SealedBuffer(tmp_path / "buffer.sqlite")
    try:
        ids = fill_buffer(buffer, unit, 5)
        section = UplinkConfig(url=url, identity_key_path=str(tmp_path / "unit.key"), ca_bundle=str(ca_path),
                               batch_size=10, backoff_base_s=0.05, backoff_cap_s=0.3, idle_s=0.05)
        uplink = from_config(section, unit.unit_id, buffer, tmp_path / "uplink.json")
        run_uplink(uplink, 20)
        assert sorted(store.read_ids()) == sorted(ids), str(uplink.status())
        assert buffer.stats()["depth"] == 0 and uplink.status()["stored"] == 5
    finally:
        buffer.close()


def test_a_unit_given_another_ca_refuses_the_certificate_and_keeps_its_reads(store, tls_central, tmp_path):
    url, ca_path = tls_central
    _key, _cert, other_ca = make_ca(tmp_path, "Someone Else CA")
    token, _ = units.make_token(store.engine, "gate-1", timedelta(minutes=10))
    key = Ed25519PrivateKey.generate()
    with pytest.raises(requests.exceptions.SSLError, match="certificate verify failed"):
        enroll(url, token, "unit-other", key, ca_bundle=str(other_ca))
    assert store.count("units") == 0                          # the token was never sent to the server

    # a unit enrolled earlier, whose config now names the wrong CA: nothing leaves it, nothing is lost
    answer = enroll(url, token, "unit-other", key, ca_bundle=str(ca_path))
    unit = EnrolledUnit("unit-other", answer["site"], key, seal.load_sealing_public(answer["sealing_public_key"]))
    (tmp_path / "unit.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))
    buffer = SealedBuffer(tmp_path / "buffer.sqlite")
    try:
        fill_buffer(buffer, unit, 5)
        section = UplinkConfig(url=url, identity_key_path=str(tmp_path / "unit.key"), ca_bundle=str(other_ca),
                               batch_size=10, backoff_base_s=0.05, backoff_cap_s=0.3, idle_s=0.05)
        uplink = from_config(section, unit.unit_id, buffer, tmp_path / "uplink.json")
        run_uplink(uplink, 1.5)
        status = uplink.status()
        assert store.count() == 0 and buffer.stats()["depth"] == 5
        assert status["stored"] == 0 and "its TLS certificate is not trusted" in status["last_error"], status
    finally:
        buffer.close()
