"""Roles (policy 462.2.1(a), 462.3(e)) and what each may do. One table, checked on the server.

The administrator runs the system (users, training, retention, audit) but gets no permission that
shows read data: being the administrator is not a reason to look at plates. Every permission that
touches read data also needs current training (462.3(d), 462.8), checked separately in
`central.access`, whatever the role.
"""
from __future__ import annotations

ROLES: dict[str, str] = {
    "officer": "officer or investigator",
    "supervisor": "supervisor",
    "commander": "Support Services Division Commander or designee (approves sharing)",
    "admin": "ALPR administrator",
    "auditor": "auditor",
}

SWORN = frozenset({"officer", "supervisor", "commander"})

PERMISSIONS: dict[str, frozenset[str]] = {
    "reads.search": SWORN,                       # search, view a read, its images
    "alerts.view": SWORN,
    "alerts.verify": SWORN,                      # 462.3(f): the officer records the CLETS check
    "hotlist.read": SWORN,
    "hotlist.manage": SWORN,                     # 462.3(c): partial plates entered by investigators
    "holds.place": SWORN | {"admin"},            # counts only; the admin works with the Custodian of Records
    "holds.read": SWORN | {"admin", "auditor"},
    "holds.release": frozenset({"supervisor", "commander", "admin"}),
    "evidence.export": frozenset({"supervisor", "commander"}),    # the bundle holds read data
    "units.view": frozenset({"supervisor", "commander", "admin"}),   # health from heartbeats; no read data
    "retention.run": frozenset({"admin"}),
    "retention.read": frozenset({"admin", "auditor"}),
    "audit.read": frozenset({"admin", "auditor"}),
    "users.manage": frozenset({"admin"}),
    "agencies.manage": frozenset({"admin", "commander"}),
    "agencies.read": SWORN | {"admin", "auditor"},
    "sharing.request": SWORN | {"admin"},        # record a written request as it arrives
    "sharing.read": frozenset({"supervisor", "commander", "admin", "auditor"}),
    "sharing.decide": frozenset({"commander"}),  # 462.7(c)
    "sharing.release": frozenset({"supervisor", "commander"}),
}

# Permissions that need current training. Managing users and training records does not, so an
# administrator whose own course lapsed can still record the renewal.
TRAINED = frozenset(PERMISSIONS) - {"users.manage"}


def allowed(role: str, permission: str) -> bool:
    return role in PERMISSIONS[permission]


def check_role(role: str) -> str:
    if role not in ROLES:
        raise ValueError(f"role {role!r}: one of {', '.join(ROLES)}")
    return role
