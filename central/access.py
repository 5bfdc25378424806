"""Who may do what, checked on the server for every request: role, then training.

`require` is the single gate every user route passes through (via `central.routes.deps`). The role
table is `central.roles.PERMISSIONS`; training currency (policy 462.3(d)) is re-read from the
database on each request, so it binds every role, the administrator and auditors included.
"""
from __future__ import annotations

from central.errors import ApiError
from central.roles import PERMISSIONS, TRAINED, allowed
from central.sessions import Actor


def require(actor: Actor, permission: str) -> Actor:
    if permission not in PERMISSIONS:
        raise KeyError(permission)
    if not allowed(actor.role, permission):
        raise ApiError(403, f"refused: the {actor.role} role may not {permission.replace('.', ' ')}")
    if permission in TRAINED and not actor.trained:
        raise ApiError(403, "refused: no current department-approved ALPR training on record "
                            "(policy 462.3(d), 462.8)")
    return actor
