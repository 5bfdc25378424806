"""People who use the store (policy 462.2.1(a)(e), 462.3(e)): name, job title, agency, role.

Passwords are hashed with argon2id (argon2-cffi); the hash names its own costs, so raising them in
the settings re-hashes at the next login instead of locking anybody out. Users are disabled, never
deleted: the audit log names them for as long as it is kept.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from argon2 import PasswordHasher

from central import audit
from central.clock import utcnow
from central.config import Settings
from central.errors import ApiError
from central.roles import ROLES, check_role
from central.schema import user_sessions, users
from wire.times import aware, iso

USERNAME_RE = re.compile(r"^[a-z][a-z0-9._-]{1,63}$")


def hasher(settings: Settings) -> PasswordHasher:
    return PasswordHasher(time_cost=settings.argon2_time_cost, memory_cost=settings.argon2_memory_kib,
                          parallelism=settings.argon2_parallelism)


@dataclass(frozen=True)
class User:
    id: int
    username: str
    full_name: str
    job_title: str
    agency: str
    role: str
    status: str


def check_password(password: str, settings: Settings) -> None:
    if len(password) < settings.min_password_length:
        raise ValueError(f"password: at least {settings.min_password_length} characters")


def add(engine: sa.Engine, settings: Settings, *, username: str, full_name: str, job_title: str, agency: str,
        role: str, password: str, by: audit.Who) -> User:
    if not USERNAME_RE.match(username):
        raise ValueError(f"username {username!r}: 2-64 of a-z 0-9 . _ -, starting with a letter")
    check_role(role)
    for name, value in (("full_name", full_name), ("job_title", job_title), ("agency", agency)):
        if not value or not value.strip() or len(value) > 200:
            raise ValueError(f"{name}: required, at most 200 characters")
    check_password(password, settings)
    digest = hasher(settings).hash(password)
    now = utcnow()
    with engine.begin() as conn:
        if conn.execute(sa.select(users.c.id).where(users.c.username == username)).first():
            raise ApiError(409, f"user {username} exists")
        uid = conn.execute(users.insert().values(
            username=username, full_name=full_name.strip(), job_title=job_title.strip(), agency=agency.strip(),
            role=role, password_hash=digest, status="active", failed_logins=0, created_at=now,
            created_by=by.username).returning(users.c.id)).scalar_one()
        audit.append(conn, by, "user_added",
                     {"user": username, "role": role, "job_title": job_title, "agency": agency})
    return User(uid, username, full_name.strip(), job_title.strip(), agency.strip(), role, "active")


def get(conn: sa.Connection, username: str) -> User | None:
    row = conn.execute(sa.select(users.c.id, users.c.username, users.c.full_name, users.c.job_title,
                                 users.c.agency, users.c.role, users.c.status)
                       .where(users.c.username == username)).first()
    return User(*row) if row else None


def require(conn: sa.Connection, username: str) -> User:
    user = get(conn, username)
    if user is None:
        raise ApiError(404, f"no user {username}")
    return user


def _row(r: Any, now: datetime) -> dict[str, Any]:
    locked = aware(r.locked_until)
    return {"username": r.username, "full_name": r.full_name, "job_title": r.job_title, "agency": r.agency,
            "role": r.role, "role_title": ROLES.get(r.role, r.role), "status": r.status,
            "locked_until": iso(locked) if locked and locked > now else None,
            "created_at": iso(r.created_at), "created_by": r.created_by, "disabled_at": iso(r.disabled_at),
            "last_login_at": iso(r.last_login_at)}


def list_users(engine: sa.Engine, role: str | None = None) -> list[dict[str, Any]]:
    now = utcnow()
    query = sa.select(users).order_by(users.c.username)
    if role:
        query = query.where(users.c.role == check_role(role))
    with engine.connect() as conn:
        return [_row(r, now) for r in conn.execute(query).all()]


def set_status(engine: sa.Engine, username: str, status: str, by: audit.Who) -> None:
    """Disable (ends the user's sessions at once) or re-enable a user."""
    now = utcnow()
    with engine.begin() as conn:
        user = require(conn, username)
        conn.execute(users.update().where(users.c.id == user.id).values(
            status=status, disabled_at=now if status == "disabled" else None))
        if status == "disabled":
            conn.execute(user_sessions.update().where(user_sessions.c.user_id == user.id,
                                                      user_sessions.c.ended_at.is_(None)).values(ended_at=now))
        audit.append(conn, by, f"user_{status}", {"user": username})


def unlock(engine: sa.Engine, username: str, by: audit.Who) -> None:
    with engine.begin() as conn:
        user = require(conn, username)
        conn.execute(users.update().where(users.c.id == user.id).values(failed_logins=0, locked_until=None))
        audit.append(conn, by, "user_unlocked", {"user": username})


def set_password(engine: sa.Engine, settings: Settings, username: str, password: str, by: audit.Who) -> None:
    check_password(password, settings)
    digest = hasher(settings).hash(password)
    with engine.begin() as conn:
        user = require(conn, username)
        conn.execute(users.update().where(users.c.id == user.id).values(password_hash=digest, failed_logins=0,
                                                                      locked_until=None))
        audit.append(conn, by, "password_set", {"user": username})
