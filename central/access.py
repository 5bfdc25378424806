"""Who may do what, checked on the server for every request: role, then training.

`require` is the single gate every user route passes through (via `central.routes.deps`), and the
command line's `--by` too. The role table is `central.roles.PERMISSIONS`; training currency (policy
462.3(d)) is re-read from the database on each request, so it binds every role, the administrator
and auditors included. A refusal is itself an audit entry (`refused`: who, what was tried, why),
committed on its own before the refusal is raised, so an attempt leaves a trace even though the
work it asked for never starts. `refused` records the same for refusals decided elsewhere (a search
without a purpose, a release by the person who recorded the request).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import sqlalchemy as sa

from central import audit
from central.errors import ApiError
from central.roles import PERMISSIONS, TRAINED, allowed
from central.sessions import Actor

REFUSED = "refused"

# each permission as the words a refusal uses: "the admin role may not verify alerts"
ACTIONS: dict[str, str] = {
    "reads.search": "search reads or view them",
    "alerts.view": "view alerts",
    "alerts.verify": "verify alerts",
    "hotlist.read": "see the hot list",
    "hotlist.manage": "change the hot list",
    "holds.place": "place legal holds",
    "holds.read": "see legal holds",
    "holds.release": "release legal holds",
    "evidence.export": "export evidence",
    "units.view": "see the units",
    "retention.run": "run retention",
    "retention.read": "see retention runs",
    "audit.read": "read the audit log",
    "users.manage": "manage users",
    "agencies.manage": "manage agencies",
    "agencies.read": "see the agencies",
    "sharing.request": "record sharing requests",
    "sharing.read": "see sharing requests",
    "sharing.decide": "decide sharing requests",
    "sharing.release": "release shared data",
}



def refused(engine: sa.Engine, who: audit.Who, permission: str | None, reason: str,
            what: dict[str, Any] | None = None) -> None:
    """Audit a refused attempt: who, what (route or command, never a body or a password), why."""
    query = {"permission": permission, "reason": reason[:300], **(what or {})}
    with engine.begin() as conn:
        audit.append(conn, who, REFUSED, query)


def require(actor: Actor, permission: str, *, engine: sa.Engine | None = None,
            what: dict[str, Any] | None = None) -> Actor:
    """The actor, if its role and training allow `permission`; else ApiError 403, audited when
    `engine` is given."""
    if permission not in PERMISSIONS:
        raise KeyError(permission)
    reason = None
    if not allowed(actor.role, permission):
        reason = f"refused: the {actor.role} role may not {ACTIONS.get(permission, permission)}"
    elif permission in TRAINED and not actor.trained:
        reason = ("refused: no current department-approved ALPR training on record "
                  "(policy 462.3(d), 462.8)")
    if reason is None:
        return actor
    if engine is not None:
        refused(engine, actor, permission, reason, what)
    raise ApiError(403, reason)


REFUSAL_STATUSES = (400, 403, 409, 413)


@contextmanager
def audited_refusals(engine: sa.Engine, who: audit.Who, permission: str, what: dict[str, Any]) -> Iterator[None]:
    """Around work on read data or a release: a refusal decided inside it (no purpose, a bad filter, a
    second person required, a request not approved) is audited once the work's own transaction has
    rolled back, then raised as it was. Not-found (404) is no refusal."""
    try:
        yield
    except ValueError as exc:
        refused(engine, who, permission, str(exc), what)
        raise
    except ApiError as exc:
        if exc.status in REFUSAL_STATUSES:
            refused(engine, who, permission, str(exc), what)
        raise
