"""The unit's identity and the Ed25519 key files: made once, kept root-only, never overwritten by accident.

Enrolment over HTTP is covered with a real central store in test_provision_e2e.py and test_central_api.py.
"""
from __future__ import annotations

import json
import stat

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from unit import identity
from unit.keys import (ed25519_key_id, ed25519_public_b64, ed25519_public_pem, load_ed25519_private,
                       load_ed25519_public, make_release_key, save_ed25519_private)
from unit.layout import Layout


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_identity_is_made_once_then_kept(tmp_path):
    lay = Layout(tmp_path)
    made = identity.create(lay, "gate-7")
    assert made["created"] and made["unit_id"] == "gate-7"
    assert mode(lay.identity_dir) == 0o700 and mode(lay.identity_key) == 0o600 and mode(lay.identity_json) == 0o600
    unit_id, key = identity.load(lay)
    assert unit_id == "gate-7" and identity.key_id(key) == made["key_id"]
    assert json.loads(lay.identity_json.read_text())["public_key"] == ed25519_public_b64(key.public_key())

    kept = identity.create(lay)                                     # rerun: the same key, nothing written
    assert not kept["created"] and kept["key_id"] == made["key_id"]
    with pytest.raises(identity.IdentityConflict, match="already has an identity"):
        identity.create(lay, "gate-8")

    forced = identity.create(lay, force=True)                       # same unit id, new key, old key kept
    assert forced["created"] and forced["unit_id"] == "gate-7" and forced["key_id"] != made["key_id"]
    old = load_ed25519_private(forced["replaced"])
    assert identity.key_id(old) == made["key_id"]


def test_identity_errors_say_what_to_run(tmp_path):
    lay = Layout(tmp_path)
    with pytest.raises(identity.IdentityError, match="run `alpr-provision init` first"):
        identity.load(lay)
    with pytest.raises(identity.IdentityError, match="--unit-id 'bad id'"):
        identity.create(lay, "bad id")
    identity.create(lay, "gate-1")
    lay.identity_key.write_text("not a key")
    with pytest.raises(identity.IdentityError, match="not an unencrypted PEM private key.*init --force"):
        identity.load(lay)
    lay.identity_key.unlink()
    save_ed25519_private(lay.identity_key, Ed25519PrivateKey.generate())
    lay.identity_json.write_text("{}")
    with pytest.raises(identity.IdentityError, match="incomplete"):
        identity.load(lay)


def test_private_key_files(tmp_path):
    key = Ed25519PrivateKey.generate()
    path = tmp_path / "k.pem"
    save_ed25519_private(path, key)
    assert mode(path) == 0o600
    assert ed25519_key_id(load_ed25519_private(path).public_key()) == ed25519_key_id(key.public_key())
    with pytest.raises(FileExistsError):
        save_ed25519_private(path, Ed25519PrivateKey.generate())
    assert ed25519_key_id(load_ed25519_private(path).public_key()) == ed25519_key_id(key.public_key())

    x = tmp_path / "x.pem"
    x.write_bytes(X25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    with pytest.raises(ValueError, match="not an Ed25519 private key"):
        load_ed25519_private(x)
    with pytest.raises(OSError):
        load_ed25519_private(tmp_path / "missing.pem")


def test_release_key_pair_and_public_forms(tmp_path):
    priv, pub, kid = make_release_key(tmp_path / "release.pem")
    assert mode(priv) == 0o600 and pub == tmp_path / "release.pub"
    public = load_ed25519_public(pub.read_bytes())                  # PEM
    assert ed25519_key_id(public) == kid
    assert ed25519_key_id(load_ed25519_public(ed25519_public_b64(public))) == kid       # base64 of the raw bytes
    assert ed25519_public_pem(public) == pub.read_bytes()
    with pytest.raises(ValueError, match="never overwritten"):
        make_release_key(priv)
    with pytest.raises(ValueError, match="PRIVATE key"):
        load_ed25519_public(priv.read_bytes())
    x_pub = X25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(ValueError, match="not Ed25519"):
        load_ed25519_public(x_pub)
