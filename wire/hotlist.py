"""The hot list as the central store sends it down (GET `wire.paths.HOTLIST`).

    {"entries": [{"pattern": <wire.patterns pattern>, "reason": <label>}, ...], "version": 1}

The body is rendered deterministically (entries in the order given, keys sorted, no spaces, no
timestamps), so its hash is a stable ETag and an unchanged list costs a unit one 304; the heartbeat's
answer names the current ETag (`hotlist_etag`). The store signs the exact body bytes with its Ed25519
signing key and sends the signature (base64) in `SIGNATURE_HEADER`, so a unit can trust a list whichever
way it arrived.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

FORMAT_VERSION = 1
SIGNATURE_HEADER = "X-Central-Signature"


def render(entries: list[dict[str, str]]) -> tuple[bytes, str]:
    """(body, ETag) for `entries` ({"pattern", "reason"} each)."""
    body = json.dumps({"version": FORMAT_VERSION, "entries": entries},
                      sort_keys=True, separators=(",", ":")).encode("utf-8")
    return body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def verified_entries(body: bytes, signature_b64: str, central_key: Ed25519PublicKey) -> list[dict[str, Any]]:
    """The entries of a body whose signature verifies; ValueError otherwise (the caller keeps its old list)."""
    try:
        central_key.verify(base64.b64decode(signature_b64, validate=True), body)
    except (InvalidSignature, binascii.Error, ValueError):
        raise ValueError("signature does not verify with the central signing key") from None
    try:
        entries = json.loads(body)["entries"]
    except (ValueError, KeyError, TypeError):
        raise ValueError("not a hot-list document") from None
    if not isinstance(entries, list) or not all(isinstance(e, dict) and isinstance(e.get("pattern"), str)
                                                for e in entries):
        raise ValueError("entries: a list of {pattern, reason}")
    return entries
