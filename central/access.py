"""Who may do what, checked on the server for every request: role, then training.

`require` is the single gate every user route passes through (via `central.routes.deps`). The role
table is `central.roles.PERMISSIONS`; training currency (policy 462.3(d)) is re-read from the
database on each request, so it binds every role, the administrator and auditors included.
"""
from __future__ import annotations

from central.errors import ApiError
from central.roles import PERMISSIONS, TRAINED, allowed
from central.sessions import Actor

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


def require(actor: Actor, permission: str) -> Actor:
    if permission not in PERMISSIONS:
        raise KeyError(permission)
    if not allowed(actor.role, permission):
        raise ApiError(403, f"refused: the {actor.role} role may not {ACTIONS.get(permission, permission)}")
    if permission in TRAINED and not actor.trained:
        raise ApiError(403, "refused: no current department-approved ALPR training on record "
                            "(policy 462.3(d), 462.8)")
    return actor
