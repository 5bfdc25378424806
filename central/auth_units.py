"""Who is calling: verify a unit's signed request (see `wire.signing`) before anything is read.

Order matters: cheap checks first (headers present, timestamp inside the replay window), then the
unit's key and status from the database, the signature, and last the nonce, recorded in the same
transaction (primary key), so a copy replayed inside the window is refused even when both copies
arrive at once.
Revocation is read from the database on every request, so it holds from the next request on.
"""
from __future__ import annotations

import base64
import time
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Mapping

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from central.errors import ApiError
from central.schema import request_nonces
from central.units import UnitRow, get_unit
from wire.signing import HEADERS, NONCE_MAX, NONCE_MIN, verify


@lru_cache(maxsize=4096)
def _public_key(b64: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(b64))


def authenticate(engine: sa.Engine, method: str, path: str, body: bytes, headers: Mapping[str, str],
                 window_s: float, now: float | None = None) -> UnitRow:
    """Return the calling unit, or raise ApiError (401 bad/unsigned/stale/replayed, 403 revoked)."""
    now = time.time() if now is None else now
    signed = {h: headers.get(h) for h in HEADERS}
    missing = [h for h, v in signed.items() if not v]
    if missing:
        raise ApiError(401, f"unsigned request: missing {', '.join(missing)}")
    try:
        ts = int(signed["X-Timestamp"])
    except ValueError:
        raise ApiError(401, "X-Timestamp: not unix seconds") from None
    if abs(now - ts) > window_s:
        raise ApiError(401, "stale timestamp: outside the replay window", server_time=int(now))
    nonce = signed["X-Nonce"]
    if not NONCE_MIN <= len(nonce) <= NONCE_MAX:
        raise ApiError(401, f"X-Nonce: {NONCE_MIN} to {NONCE_MAX} characters")
    try:
        with engine.begin() as conn:
            unit = get_unit(conn, signed["X-Unit-Id"])
            if unit is None or not verify(_public_key(unit.public_key), method, path, body, signed):
                raise ApiError(401, "bad signature or unknown unit")
            if unit.status != "active":
                raise ApiError(403, f"unit {unit.unit_id} is {unit.status}")
            conn.execute(request_nonces.insert().values(unit_id=unit.unit_id, nonce=nonce,
                                                        seen_at=datetime.fromtimestamp(now, timezone.utc)))
    except sa.exc.IntegrityError:
        raise ApiError(401, "replayed request: nonce already seen") from None
    return unit


def prune_nonces(engine: sa.Engine, window_s: float) -> int:
    """Forget nonces older than twice the window: the timestamp check refuses such requests anyway."""
    cutoff = datetime.now(timezone.utc) - timedelta(seconds=2 * window_s)
    with engine.begin() as conn:
        return conn.execute(request_nonces.delete().where(request_nonces.c.seen_at < cutoff)).rowcount
