"""Training records (policy 462.3(d), 462.8): course, completed, expires.

A user is trained on a day when some record has completed_on <= day <= expires_on. Without that,
no role reaches read data (checked on every request in `central.access`, so a course that lapses at
midnight takes effect at once, sessions included).
"""
from __future__ import annotations

from datetime import date
from typing import Any

import sqlalchemy as sa

from central import audit
from central.clock import utcnow
from central.schema import training_records, users
from central.users import require
from wire.times import iso


def record(engine: sa.Engine, username: str, course: str, completed_on: date, expires_on: date,
           by: audit.Who) -> int:
    course = (course or "").strip()
    if not course or len(course) > 200:
        raise ValueError("course: required, at most 200 characters")
    if expires_on <= completed_on:
        raise ValueError("expires must be after completed")
    if completed_on > utcnow().date():
        raise ValueError("completed: cannot be in the future")
    if expires_on < utcnow().date():
        raise ValueError(f"expires: this course expired on {expires_on.isoformat()}; a record that gives no "
                         "access is refused (record the renewal, with its own dates)")
    with engine.begin() as conn:
        user = require(conn, username)
        rid = conn.execute(training_records.insert().values(
            user_id=user.id, course=course, completed_on=completed_on, expires_on=expires_on,
            recorded_by=by.username, recorded_at=utcnow()).returning(training_records.c.id)).scalar_one()
        audit.append(conn, by, "training_recorded", {"user": username, "course": course,
                                                     "completed": completed_on.isoformat(),
                                                     "expires": expires_on.isoformat()})
    return rid


def is_current(conn: sa.Connection, user_id: int, day: date | None = None) -> bool:
    day = day or utcnow().date()
    return conn.execute(sa.select(training_records.c.id).where(
        training_records.c.user_id == user_id, training_records.c.completed_on <= day,
        training_records.c.expires_on >= day).limit(1)).first() is not None


def list_records(engine: sa.Engine, username: str | None = None) -> list[dict[str, Any]]:
    today = utcnow().date()
    query = (sa.select(training_records, users.c.username).join(users, users.c.id == training_records.c.user_id)
             .order_by(users.c.username, training_records.c.completed_on))
    with engine.connect() as conn:
        if username:
            query = query.where(users.c.id == require(conn, username).id)
        rows = conn.execute(query).all()
    return [{"username": r.username, "course": r.course, "completed": r.completed_on.isoformat(),
             "expires": r.expires_on.isoformat(), "current": r.completed_on <= today <= r.expires_on,
             "recorded_by": r.recorded_by, "recorded_at": iso(r.recorded_at)} for r in rows]
