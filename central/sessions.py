"""Logins and sessions for people (policy 462.5(a): a login/password-protected system).

A session token is 256 random bits handed to the client once; only its SHA-256 is stored, so a copy
of the database yields no usable session. Sessions end at an absolute lifetime, after an idle
period, at logout, or when the user is disabled. After `lockout_failures` consecutive counted failures
the account locks for `lockout_minutes`, during which even the right password is refused; which
failures count is for `central.login_guard` to say (each address at most once a day), so that no
single caller can lock an account at will. Every login, failure and lock-out goes into the audit
chain; an unknown username costs the same argon2 work as a known one, so timing does not tell which
names exist.
"""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from central import audit
from central.clock import utcnow
from central.config import Settings
from central.errors import ApiError
from central.schema import user_sessions, users
from central.training import is_current
from central.users import hasher
from wire.times import aware, iso


@dataclass(frozen=True)
class Actor:
    """The logged-in user behind a request; `trained` is computed afresh on every request."""
    user_id: int
    username: str
    full_name: str
    agency: str
    role: str
    trained: bool
    session_expires_at: datetime


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


_DUMMY: dict[tuple[int, int, int], str] = {}


def _dummy_hash(settings: Settings) -> str:
    key = (settings.argon2_time_cost, settings.argon2_memory_kib, settings.argon2_parallelism)
    if key not in _DUMMY:
        _DUMMY[key] = hasher(settings).hash(secrets.token_hex(16))
    return _DUMMY[key]


REFUSED = "login refused: wrong username or password, or the account is locked or disabled"


def login(engine: sa.Engine, settings: Settings, username: str, password: str,
          client: str = "", count_failure: bool = True) -> tuple[str, datetime]:
    """Check the password; return (token, expires_at) or raise ApiError 401 (one message for all
    refusals, so the answer does not tell a wrong password from a locked or unknown account). A wrong
    password counts toward the account's lock-out only if `count_failure`."""
    now = utcnow()
    ph = hasher(settings)
    with engine.connect() as conn:
        row = conn.execute(sa.select(users).where(users.c.username == username)).first()
    # the slow hash runs outside any transaction; the outcome is then written under a row lock
    try:
        ph.verify(row.password_hash if row else _dummy_hash(settings), password)
        matched = row is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        matched = False
    # a refusal is raised only after the transaction commits: raising inside it would roll back the
    # failure count and the audit entry that records it
    with engine.begin() as conn:
        if row is None:
            audit.append(conn, audit.Principal(username[:64] or "-", "unknown"), "login_failed",
                         {"reason": "unknown user", "client": client})
            session = None
        else:
            session = _settle(conn, settings, row.id, matched, password, client, now, count_failure)
    if session is None:
        raise ApiError(401, REFUSED)
    return session


def _principal(conn: sa.Connection, username: str) -> audit.Principal:
    row = conn.execute(sa.select(users.c.username, users.c.agency).where(users.c.username == username)).first()
    return audit.Principal(row.username, row.agency) if row else audit.Principal(username[:64] or "-", "unknown")


def refuse_locked(engine: sa.Engine, username: str, client: str) -> None:
    """Record a login refused, without a hash, because this address is locked out of the account."""
    with engine.begin() as conn:
        audit.append(conn, _principal(conn, username), "login_failed",
                     {"reason": "locked", "scope": "address", "client": client})


def record_address_lockout(engine: sa.Engine, username: str, client: str, failures: int, minutes: int) -> None:
    """Record that `client` is locked out of this account (the account itself stays open elsewhere)."""
    with engine.begin() as conn:
        audit.append(conn, _principal(conn, username), "lockout",
                     {"scope": "address", "failures": failures, "client": client, "minutes": minutes})


def _settle(conn: sa.Connection, settings: Settings, user_id: int, matched: bool, password: str, client: str,
            now: datetime, count_failure: bool = True) -> tuple[str, datetime] | None:
    """Under a row lock: count a failure (locking the account at the limit) or open a session."""
    cur = conn.execute(sa.select(users).where(users.c.id == user_id).with_for_update()).one()
    who = audit.Principal(cur.username, cur.agency)
    locked = aware(cur.locked_until)
    reason = ("disabled" if cur.status != "active" else "locked" if locked and locked > now
              else None if matched else "wrong password")
    if reason:
        if reason == "wrong password" and count_failure:
            failures = cur.failed_logins + 1
            values: dict = {"failed_logins": failures}
            if failures >= settings.lockout_failures:
                values.update(failed_logins=0, locked_until=now + timedelta(minutes=settings.lockout_minutes))
                audit.append(conn, who, "lockout", {"scope": "account", "failures": failures, "client": client,
                                                    "minutes": settings.lockout_minutes})
            conn.execute(users.update().where(users.c.id == cur.id).values(**values))
        audit.append(conn, who, "login_failed", {"reason": reason, "client": client})
        return None
    token = secrets.token_urlsafe(32)
    expires = now + timedelta(seconds=settings.session_ttl_s)
    values = {"failed_logins": 0, "locked_until": None, "last_login_at": now}
    ph = hasher(settings)
    if ph.check_needs_rehash(cur.password_hash):
        values["password_hash"] = ph.hash(password)
    conn.execute(users.update().where(users.c.id == cur.id).values(**values))
    conn.execute(user_sessions.insert().values(token_hash=_hash(token), user_id=cur.id, created_at=now,
                                               last_seen_at=now, expires_at=expires))
    audit.append(conn, who, "login", {"client": client})
    return token, expires


def resolve(engine: sa.Engine, settings: Settings, token: str, touch: bool = True) -> Actor:
    """The Actor for a session token, or ApiError 401. Touches last_seen_at (idle timeout) unless
    `touch` is False (a live page re-checking its session is not the user being active)."""
    now = utcnow()
    with engine.begin() as conn:
        row = conn.execute(
            sa.select(user_sessions.c.token_hash, user_sessions.c.expires_at, user_sessions.c.last_seen_at,
                      user_sessions.c.ended_at, users.c.id, users.c.username, users.c.full_name, users.c.agency,
                      users.c.role, users.c.status)
            .join(users, users.c.id == user_sessions.c.user_id)
            .where(user_sessions.c.token_hash == _hash(token))).first()
        if row is None or row.ended_at is not None:
            raise ApiError(401, "not logged in: unknown or ended session")
        if row.status != "active":
            raise ApiError(401, "not logged in: user disabled")
        if aware(row.expires_at) <= now:
            raise ApiError(401, "session expired: log in again")
        if aware(row.last_seen_at) + timedelta(seconds=settings.session_idle_s) <= now:
            conn.execute(user_sessions.update().where(user_sessions.c.token_hash == row.token_hash)
                         .values(ended_at=now))
            raise ApiError(401, "session idle too long: log in again")
        if touch and (now - aware(row.last_seen_at)).total_seconds() > 5:     # spare a write per request
            conn.execute(user_sessions.update().where(user_sessions.c.token_hash == row.token_hash)
                         .values(last_seen_at=now))
        trained = is_current(conn, row.id, now.date())
    return Actor(row.id, row.username, row.full_name, row.agency, row.role, trained, aware(row.expires_at))


def actor_for_user(engine: sa.Engine, username: str) -> Actor:
    """The Actor for a named, active user without a session: for command-line work done on a user's
    behalf (`--by`), which then passes the same role and training checks as the API."""
    now = utcnow()
    with engine.connect() as conn:
        row = conn.execute(sa.select(users).where(users.c.username == username)).first()
        if row is None or row.status != "active":
            raise ApiError(403, f"--by {username}: no such active user")
        trained = is_current(conn, row.id, now.date())
    return Actor(row.id, row.username, row.full_name, row.agency, row.role, trained, now)


def logout(engine: sa.Engine, token: str) -> None:
    with engine.begin() as conn:
        conn.execute(user_sessions.update().where(user_sessions.c.token_hash == _hash(token),
                                                  user_sessions.c.ended_at.is_(None)).values(ended_at=utcnow()))


def describe(actor: Actor) -> dict:
    return {"username": actor.username, "full_name": actor.full_name, "agency": actor.agency, "role": actor.role,
            "training_current": actor.trained, "session_expires_at": iso(actor.session_expires_at)}
