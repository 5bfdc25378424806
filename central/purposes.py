"""The purposes for which ALPR data may be searched, taken from policy 462 (the shipped text).

462.3(a) restricts use to official law enforcement business; 462.2 names the uses (stolen or wanted
vehicles, stolen plates, missing persons, warrants, homeland security, electronic surveillance,
suspect interdiction, stolen property recovery); 462.3(b)(c) add patrol, criminal investigation and
canvassing a crime scene; 462.5(b) adds department civil or administrative actions. Each code carries
the policy's own words, and a test checks every phrase is in the policy file, so the list cannot
drift from the text. A search also needs a case or incident number (462.5(b)).
"""
from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Purpose:
    code: str
    section: str
    phrase: str            # verbatim from the policy text


PURPOSES: dict[str, Purpose] = {p.code: p for p in (
    Purpose("stolen_vehicle", "462.2", "identifying stolen or wanted vehicles"),
    Purpose("wanted_vehicle", "462.2", "identifying stolen or wanted vehicles"),
    Purpose("stolen_plate", "462.2", "stolen license plates"),
    Purpose("missing_person", "462.2", "missing persons"),
    Purpose("active_warrant", "462.2", "active warrants"),
    Purpose("homeland_security", "462.2", "homeland security"),
    Purpose("electronic_surveillance", "462.2", "electronic surveillance"),
    Purpose("suspect_interdiction", "462.2", "suspect interdiction"),
    Purpose("stolen_property_recovery", "462.2", "stolen property recovery"),
    Purpose("routine_patrol", "462.3(b)", "routine patrol operation"),
    Purpose("criminal_investigation", "462.3(b), 462.5(b)", "specific criminal investigation"),
    Purpose("crime_scene_canvass", "462.3(c)", "canvass license plates around any crime scene"),
    Purpose("civil_administrative_action", "462.5(b)", "department-related civil or administrative action"),
)}

# Recorded for accesses that are not searches: the purpose is fixed by the procedure itself.
EVIDENCE_PURPOSE = "evidence"           # 462.4: booked into evidence on portable media
SHARING_PURPOSE = "sharing"             # 462.7: release under an approved request

CASE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._:/#-]{2,39}$")


def check_purpose(code: str | None) -> str:
    listed = ", ".join(PURPOSES) + " (policy 462.2, 462.3, 462.5(b))"
    if not code or not code.strip():
        raise ValueError("purpose: required, one of " + listed)
    if code not in PURPOSES:
        raise ValueError(f"purpose {code[:40]!r} is not in the policy's list: one of " + listed)
    return code


def check_case(number: str | None) -> str:
    number = (number or "").strip()
    if not CASE_RE.match(number):
        raise ValueError("case_number: a case or incident number is required (3-40 of letters, digits, "
                         "space . _ : / # -; policy 462.5(b))")
    return number
