"""The unit registry: one-time enrolment tokens, enrolment, listing and revocation.

A token is made by an administrator for one site (`alpr-central units enroll-token --site S`), given
to the technician, and spent by the unit's first request, which registers its Ed25519 public key.
Only a SHA-256 of the token is kept (tokens are 256-bit random, so no slow hash is needed).
"""
from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from central.errors import ApiError
from central.schema import enroll_tokens, units

UNIT_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
SITE_RE = UNIT_ID_RE


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def make_token(engine: sa.Engine, site: str, ttl: timedelta) -> tuple[str, datetime]:
    if not SITE_RE.match(site):
        raise ValueError(f"site {site!r}: use letters, digits, '.', '_' or '-' (max 64)")
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
    if not UNIT_ID_RE.match(unit_id or ""):
        raise ApiError(400, "unit_id: use letters, digits, '.', '_' or '-' (max 64)")
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


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:            # SQLite gives naive datetimes; everything stored is UTC
        value = value.replace(tzinfo=timezone.utc)
    return value.isoformat(timespec="seconds").replace("+00:00", "Z")


def list_units(engine: sa.Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(units).order_by(units.c.unit_id)).mappings().all()
    return [{"unit_id": r["unit_id"], "site": r["site"], "status": r["status"],
             "enrolled_at": _iso(r["enrolled_at"]), "revoked_at": _iso(r["revoked_at"]),
             "last_seen_at": _iso(r["last_seen_at"])} for r in rows]
