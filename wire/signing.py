"""Request signing between a unit and the central store.

A unit signs every request with its Ed25519 identity key (made at provisioning). The signed string is

    METHOD \n PATH \n TIMESTAMP \n NONCE \n hex(SHA-256(body))

sent as headers X-Unit-Id, X-Timestamp (unix seconds), X-Nonce (random, 16 to 64 characters) and
X-Signature (base64). The store refuses a timestamp outside its replay window or a nonce it has
already seen inside that window, so a captured request cannot be sent again.
"""
from __future__ import annotations

import base64
import hashlib
import secrets
import time

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

HEADERS = ("X-Unit-Id", "X-Timestamp", "X-Nonce", "X-Signature")
NONCE_MIN, NONCE_MAX = 16, 64           # characters; the store refuses a nonce outside them


def canonical(method: str, path: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    digest = hashlib.sha256(body).hexdigest()
    return "\n".join([method.upper(), path, timestamp, nonce, digest]).encode("utf-8")


def sign_headers(key: Ed25519PrivateKey, unit_id: str, method: str, path: str, body: bytes,
                 now: float | None = None) -> dict[str, str]:
    ts = str(int(now if now is not None else time.time()))
    nonce = secrets.token_urlsafe(16)
    sig = key.sign(canonical(method, path, ts, nonce, body))
    return {"X-Unit-Id": unit_id, "X-Timestamp": ts, "X-Nonce": nonce,
            "X-Signature": base64.b64encode(sig).decode("ascii")}


def verify(public: Ed25519PublicKey, method: str, path: str, body: bytes, headers: dict[str, str]) -> bool:
    try:
        sig = base64.b64decode(headers["X-Signature"], validate=True)
        public.verify(sig, canonical(method, path, headers["X-Timestamp"], headers["X-Nonce"], body))
        return True
    except (InvalidSignature, KeyError, ValueError):
        return False
