"""The API for people (officers, supervisors, commander, administrator, auditors), one router per area.

Every route here sits behind `deps.UserGate` (a logged-in user, else 401) and names the permission
it needs (`deps.actor_for`), which checks role and training on the server for every request.
"""
from __future__ import annotations

from fastapi import APIRouter

from central.routes import admin, alerts, auth, auditing, holds, hotlist, policy, reads, sharing, units


def router() -> APIRouter:
    r = APIRouter()
    for module in (policy, auth, reads, alerts, hotlist, holds, sharing, admin, auditing, units):
        r.include_router(module.router)
    return r
