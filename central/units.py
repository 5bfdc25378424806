"""The unit registry: one-time enrolment tokens, enrolment, listing and revocation.

A token is made by an administrator for one site (`alpr-central units enroll-token --site S`), given
to the technician, and spent by the unit's first request, which registers its Ed25519 public key.
Only a SHA-256 of the token is kept (tokens are 256-bit random, so no slow hash is needed).
"""
from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from central.clock import utcnow
from central.errors import ApiError
from central.schema import enroll_tokens, units
from wire.read import ID_MAX, ID_RE
from wire.times import iso


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def make_token(engine: sa.Engine, site: str, ttl: timedelta) -> tuple[str, datetime]:
    if not ID_RE.match(site):
        raise ValueError(f"site {site!r}: use letters, digits, '.', '_' or '-' (max {ID_MAX})")
    token = secrets.token_urlsafe(32)
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(enroll_tokens.insert().values(token_hash=_hash(token), site=site, created_at=now,
                                                   expires_at=now + ttl))
    return token, now + ttl


def parse_public_key(b64: str) -> Ed25519PublicKey:
    try:
        raw = base64.b64decode(b64, validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except (ValueError, TypeError):
        raise ApiError(400, "public_key: not base64 of a raw 32-byte Ed25519 key") from None


def enrol(engine: sa.Engine, token: str, unit_id: str, public_key_b64: str) -> str:
    """Spend `token` and register the unit; returns its site. The token stays unspent on any refusal."""
    if not ID_RE.match(unit_id or ""):
        raise ApiError(400, f"unit_id: use letters, digits, '.', '_' or '-' (max {ID_MAX})")
    parse_public_key(public_key_b64)
    now = utcnow()
    try:
        return _enrol_tx(engine, token, unit_id, public_key_b64, now)
    except sa.exc.IntegrityError:       # the same unit_id enrolled concurrently with another token
        raise ApiError(409, f"unit {unit_id} is already enrolled") from None


def _enrol_tx(engine: sa.Engine, token: str, unit_id: str, public_key_b64: str, now: datetime) -> str:
    with engine.begin() as conn:
        row = conn.execute(sa.select(enroll_tokens.c.site).where(
            enroll_tokens.c.token_hash == _hash(token), enroll_tokens.c.used_at.is_(None),
            enroll_tokens.c.expires_at > now).with_for_update()).first()
        if row is None:
            raise ApiError(403, "token unknown, expired or already used")
        if conn.execute(sa.select(units.c.unit_id).where(units.c.unit_id == unit_id)).first():
            raise ApiError(409, f"unit {unit_id} is already enrolled")
        conn.execute(enroll_tokens.update().where(enroll_tokens.c.token_hash == _hash(token))
                     .values(used_at=now, used_by=unit_id))
        conn.execute(units.insert().values(unit_id=unit_id, site=row.site, public_key=public_key_b64,
                                           status="active", enrolled_at=now))
    return row.site


def revoke(engine: sa.Engine, unit_id: str) -> bool:
    """Refuse the unit's requests from now on. False if no such unit."""
    with engine.begin() as conn:
        res = conn.execute(units.update().where(units.c.unit_id == unit_id)
                           .values(status="revoked", revoked_at=sa.func.coalesce(units.c.revoked_at, utcnow())))
        return res.rowcount == 1


@dataclass(frozen=True)
class UnitRow:
    unit_id: str
    site: str
    public_key: str
    status: str


def get_unit(conn: sa.Connection, unit_id: str) -> UnitRow | None:
    row = conn.execute(sa.select(units.c.unit_id, units.c.site, units.c.public_key, units.c.status)
                       .where(units.c.unit_id == unit_id)).first()
    return UnitRow(*row) if row else None


def list_units(engine: sa.Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(units).order_by(units.c.unit_id)).mappings().all()
    return [{"unit_id": r["unit_id"], "site": r["site"], "status": r["status"],
             "enrolled_at": iso(r["enrolled_at"]), "revoked_at": iso(r["revoked_at"]),
             "last_seen_at": iso(r["last_seen_at"])} for r in rows]
