"""Seal a read to the central store's X25519 sealing key so a stolen unit or SD card yields nothing.

Envelope (version 1), everything a unit keeps or sends about a read's content:

    {"v": 1, "kid": <hex fingerprint of the recipient key>, "epk": <b64 ephemeral X25519 public>,
     "nonce": <b64 12 bytes>, "ct": <b64 AES-256-GCM ciphertext+tag>}

key = HKDF-SHA256(X25519(ephemeral, recipient), salt=epk || recipient_pub, info=b"alpr-read-seal-v1").
The read_id is bound as associated data, so a ciphertext cannot be moved to another read's row.
The unit holds only the recipient's *public* key and throws the ephemeral private key away at once:
it can write sealed reads but never open them again.

The helpers here handle the X25519 *sealing* key only, and say so in their names; the Ed25519 keys
(a unit's identity, the central signing key, the release key) have their own.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

VERSION = 1
INFO = b"alpr-read-seal-v1"
ENVELOPE_SCHEMA = {"type": "object", "description": "sealed read, envelope version 1 (wire.seal)",
                   "properties": {k: {"type": "string"} for k in ("kid", "epk", "nonce", "ct")} | {"v": {"type": "integer"}}}


class SealError(ValueError):
    """A sealed envelope could not be opened (wrong key, tampered, or malformed)."""


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def _unb64(s: str) -> bytes:
    return base64.b64decode(s.encode("ascii"), validate=True)


def raw_sealing_public(key: X25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def sealing_public_b64(key: X25519PublicKey) -> str:
    """Base64 of the raw 32 bytes: the form units are given at enrolment and `load_sealing_public` reads."""
    return _b64(raw_sealing_public(key))


def sealing_key_id(public: X25519PublicKey | bytes) -> str:
    """Short fingerprint of a sealing public key; lets the store say 'sealed to another key'."""
    raw = public if isinstance(public, bytes) else raw_sealing_public(public)
    return hashlib.sha256(raw).hexdigest()[:16]


def load_sealing_public(data: str | bytes) -> X25519PublicKey:
    """Accept a raw 32-byte key, its base64, or a PEM SubjectPublicKeyInfo. A key nothing can be sealed
    to (all zeros, or another low-order point) is refused here, at load, with a SealError: taken, it
    would make every read fail to seal, and be lost."""
    if isinstance(data, str):
        data = data.strip().encode("ascii")
    if data.startswith(b"-----BEGIN"):
        key = serialization.load_pem_public_key(data)
        if not isinstance(key, X25519PublicKey):
            raise SealError("PEM key is not an X25519 public key")
    else:
        if len(data) != 32:
            data = _unb64(data.decode("ascii"))
        key = X25519PublicKey.from_public_bytes(data)
    try:        # a low-order point gives an all-zero shared secret, which `exchange` refuses
        X25519PrivateKey.generate().exchange(key)
    except ValueError:
        raise SealError("not a usable X25519 public key (a low-order point such as all zeros: "
                        "no read could be sealed to it)") from None
    return key


def _derive(shared: bytes, epk: bytes, recipient: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=epk + recipient, info=INFO).derive(shared)


def seal(payload: dict[str, Any], recipient: X25519PublicKey, read_id: str) -> dict[str, Any]:
    eph = X25519PrivateKey.generate()
    epk = raw_sealing_public(eph.public_key())
    rpk = raw_sealing_public(recipient)
    key = _derive(eph.exchange(recipient), epk, rpk)
    nonce = os.urandom(12)
    plain = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode("utf-8")
    ct = AESGCM(key).encrypt(nonce, plain, read_id.encode("utf-8"))
    return {"v": VERSION, "kid": sealing_key_id(rpk), "epk": _b64(epk), "nonce": _b64(nonce), "ct": _b64(ct)}


def open_sealed(envelope: dict[str, Any], private: X25519PrivateKey, read_id: str) -> dict[str, Any]:
    try:
        if envelope.get("v") != VERSION:
            raise SealError(f"unsupported envelope version {envelope.get('v')!r}")
        rpk = raw_sealing_public(private.public_key())
        if envelope.get("kid") != sealing_key_id(rpk):
            raise SealError("sealed to another central key")
        epk = _unb64(envelope["epk"])
        key = _derive(private.exchange(X25519PublicKey.from_public_bytes(epk)), epk, rpk)
        plain = AESGCM(key).decrypt(_unb64(envelope["nonce"]), _unb64(envelope["ct"]), read_id.encode("utf-8"))
        return json.loads(plain)
    except SealError:
        raise
    except (InvalidTag, KeyError, ValueError, TypeError) as exc:
        raise SealError(f"cannot open sealed read: {type(exc).__name__}") from None
