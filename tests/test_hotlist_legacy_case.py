"""Hot-list entries must carry a purpose and a case number (Civil Code 1798.90.52; policy 462.5(b)).

The API refuses an entry without either; an entry kept from before case numbers were required (its
case is empty in the database) is shown as needing one, and re-entering its pattern with a purpose and
case gives it them, rather than the 409 an active entry gets (SQLite and PostgreSQL)."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from central.schema import hotlist_entries


pytest_plugins = ["central_fixtures", "policy_fixtures"]
ENTRY = {"plate": "7LEG123", "reason": "stolen_vehicle", "source": "CLETS SVS"}


def test_an_entry_without_a_case_number_is_flagged_and_given_one_by_re_entry(policy):
    officer = policy.user("inv.diaz", "officer")
    for missing in ({"purpose": "stolen_vehicle"}, {"case_number": "DR-2026-0001"}):
        r = officer.post("/v1/hotlist/entries", json={**ENTRY, **missing})
        assert r.status_code == 422 and list(r.json()) == ["error"], r.text
    with policy.engine.begin() as conn:                      # as an entry made before case numbers were required
        legacy = conn.execute(hotlist_entries.insert().values(
            pattern="7LEG123", note="stolen vehicle", category="stolen_vehicle", purpose="stolen_vehicle",
            source="manual", entered_by="old.import", added_at=datetime.now(timezone.utc))
            .returning(hotlist_entries.c.id)).scalar_one()
    listed = officer.get("/v1/hotlist/entries").json()
    assert [(e["id"], e["needs_case"]) for e in listed] == [(legacy, True)]

    r = officer.post("/v1/hotlist/entries", json={**ENTRY, "purpose": "stolen_vehicle", "case_number": "DR-2026-0077"})
    assert r.status_code == 201, r.text
    assert (r.json()["id"], r.json()["case_number"], r.json()["needs_case"]) == (legacy, "DR-2026-0077", False)
    added = policy.audit_rows("hotlist_add")[-1]
    assert (added["purpose"], added["case_number"]) == ("stolen_vehicle", "DR-2026-0077")
    again = officer.post("/v1/hotlist/entries", json={**ENTRY, "purpose": "stolen_vehicle", "case_number": "DR-9"})
    assert again.status_code == 409                          # now it has one: an active entry is not replaced
