"""What a careless or hostile world does to the store's policy (issue 19, items 3, 7, 9, 12, 14; SQLite
and PostgreSQL): retention from the store's clock with implausible capture times flagged; no read
count to a role without data access and data access given by one person alone flagged; legal holds
bounded, broad ones reported; refused attempts audited; the releaser of a share named; an expired
training record refused."""
from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime, timedelta, timezone

import pytest

from central import audit, training
from central.clock import years_before
from central.config import Settings
from policy_fixtures import PASSWORD, SEARCH, TEST_ADMIN, Client, insert_reads

NOW = datetime.now(timezone.utc)
TODAY = date.today().isoformat()


def _report(client: Client, **extra) -> dict:
    r = client.get("/v1/audit/report", params={"from": "1960-01-01", "to": "2100-01-01", **extra})
    assert r.status_code == 200, r.text
    return r.json() if not extra else r.text


# -- item 3: retention counts from receipt; implausible capture times flagged ---------------------
def test_retention_counts_from_receipt_and_odd_capture_times_are_flagged(policy):
    unset, ahead, normal = insert_reads(policy.engine, [
        {"plate": "7CLK197", "captured_at": datetime(1970, 1, 1, 0, 0, 5, tzinfo=timezone.utc), "received_at": NOW},
        {"plate": "7CLK209", "captured_at": datetime(2099, 3, 1, tzinfo=timezone.utc), "received_at": NOW},
        {"plate": "7CLK000", "captured_at": NOW - timedelta(minutes=3), "received_at": NOW}])
    old_received = insert_reads(policy.engine, [{"plate": "7CLK209", "captured_at": datetime(2099, 3, 1, tzinfo=timezone.utc),
                                                 "received_at": years_before(NOW, 5) - timedelta(days=2)}])[0]
    admin = policy.user("adm.kim", "admin")
    run = admin.post("/v1/retention/run", json={}).json()
    left = set(policy.store.read_ids())
    assert unset in left and ahead in left and normal in left          # 1970 is not five years past receipt
    assert old_received not in left and run["reads_purged"] == 1        # 2099 received > 5 years ago goes

    officer = policy.user("ofc.lee", "officer")
    found = officer.post("/v1/search", json={**SEARCH, "plate": "7CLK*"}).json()["results"]
    flags = {r["read_id"]: r["capture_time_flag"] for r in found}
    assert "before 2000" in flags[unset] and "ahead" in flags[ahead] and flags[normal] is None
    assert all(r["received_at"] for r in found)
    view = officer.post(f"/v1/reads/{unset}/view", json=SEARCH).json()
    assert view["captured_at"].startswith("1970-01-01") and "before 2000" in view["capture_time_flag"]
    assert officer.post(f"/v1/reads/{normal}/view", json=SEARCH).json()["capture_time_flag"] is None

    report = _report(policy.user("aud.ray", "auditor"))["capture_times"]
    assert report["count"] == 2 and {x["read_id"] for x in report["reads"]} == {unset, ahead}
    assert "7CLK" not in json.dumps(report)                             # counts and ids, no plate


def test_capture_time_judgement():
    from central.capture_times import flag
    s = Settings()
    received = datetime(2027, 1, 10, 12, tzinfo=timezone.utc)
    assert flag(received - timedelta(days=30), received, s) is None      # a unit's buffer keeps 30 days
    assert "behind" in flag(received - timedelta(days=40), received, s)
    assert flag(received + timedelta(minutes=30), received, s) is None
    assert "ahead" in flag(received + timedelta(hours=2), received, s)
    assert "2000" in flag(datetime(1999, 12, 31, tzinfo=timezone.utc), datetime(1999, 12, 31, tzinfo=timezone.utc), s)


# -- item 7: no trace of read data without data access; one person alone flagged -------------------
def test_hold_read_count_is_not_shown_to_a_role_without_data_access(policy):
    insert_reads(policy.engine, [{"plate": "7SEEN01"}])
    admin = policy.user("adm.kim", "admin")
    window = {"from": "2020-01-01", "to": TODAY}
    placed = []
    for plate in ("7SEEN01", "7NEVER1"):                                 # a plate seen, a plate never seen
        r = admin.post("/v1/holds", json={"case_number": "DR-9", "reason": "records request",
                                          "filter": {"plate": plate, **window}})
        assert r.status_code == 201 and r.json()["read_count"] is None
        placed.append(r.json()["id"])
    assert [h["read_count"] for h in admin.get("/v1/holds").json()] == [None, None]
    assert admin.get(f"/v1/holds/{placed[0]}").json()["read_count"] is None
    logged = [e for e in admin.get("/v1/audit", params={"action": "hold_placed"}).json()]
    assert [e["result_count"] for e in logged] == [None, None]           # nor in the log the admin reads
    strip = [{k: v for k, v in e["query"].items() if k not in ("hold", "filter")} for e in logged]
    assert strip[0] == strip[1]                                          # the seen and the unseen plate look alike
    report = _report(admin)
    assert [h["read_count"] for h in report["holds_placed"]] == [None, None]
    sgt = policy.user("sgt.park", "supervisor")                          # a role with data access sees it
    assert [h["read_count"] for h in sgt.get("/v1/holds").json()] == [1, 0]


def test_data_access_given_by_one_person_alone_is_flagged(policy):
    admin = policy.user("adm.kim", "admin")
    admin2 = policy.user("adm.ng", "admin")
    today = date.today()
    course = {"course": "ALPR 101", "completed": str(today), "expires": str(today + timedelta(days=365))}
    for name in ("ofc.solo", "ofc.pair"):
        assert admin.post("/v1/users", json={"username": name, "full_name": name, "job_title": "Officer",
                                             "agency": "LAPP", "role": "officer", "password": PASSWORD}).status_code == 201
    assert admin.post("/v1/users/ofc.solo/training", json=course).status_code == 201     # alone
    assert admin2.post("/v1/users/ofc.pair/training", json=course).status_code == 201    # a second person
    grants = _report(policy.user("aud.ray", "auditor"))["data_access_granted"]
    made = [g for g in grants if g["what"].startswith("account")]
    assert {(g["by"], g["user"]) for g in made} >= {("adm.kim", "ofc.solo"), ("adm.kim", "ofc.pair")}
    trained = {g["user"]: g for g in grants if g["what"].startswith("training") and g["user"].startswith("ofc.")}
    assert "one person alone" in trained["ofc.solo"]["flag"] and trained["ofc.solo"]["by"] == "adm.kim"
    assert trained["ofc.pair"]["flag"] is None
    text = _report(policy.user("aud.two", "auditor"), format="text")
    assert "FLAGGED: one person alone" in text and "ofc.solo" in text


def test_the_recorder_of_a_share_neither_approves_nor_releases_it(policy):
    insert_reads(policy.engine, [{"plate": "7ABC123"}])
    cmdr = policy.user("cmdr.reyes", "commander")
    agency = cmdr.post("/v1/agencies", json={"name": "Harbor PD", "kind": "law_enforcement",
                                             "california_public": True}).json()
    req = cmdr.post("/v1/sharing/requests", json={"agency_id": agency["id"], "requester_name": "Det. Cruz",
                                                  "purpose": "theft", "query": {"plate": "7ABC123"}}).json()
    assert cmdr.post(f"/v1/sharing/requests/{req['id']}/decision", json={"approve": True, "reason": "ok"}).status_code == 403
    cmdr2 = policy.user("cmdr.ng", "commander")
    assert cmdr2.post(f"/v1/sharing/requests/{req['id']}/decision", json={"approve": True, "reason": "ok"}).status_code == 200
    assert cmdr.post(f"/v1/sharing/requests/{req['id']}/release").status_code == 403
    refusals = [e for e in policy.audit_rows("refused") if e["username"] == "cmdr.reyes"]
    assert [e["query"]["permission"] for e in refusals] == ["sharing.decide", "sharing.release"]
    assert all("recorded request" in e["query"]["reason"] for e in refusals)


# -- item 9 (holds): bounded, and a broad one reported ---------------------------------------------
def test_a_hold_is_bounded_and_a_broad_one_is_in_the_report(policy):
    insert_reads(policy.engine, [{"plate": "7ABC123"}, {"plate": "8XYZ999"}])
    officer = policy.user("inv.diaz", "officer")
    for selection in ({"from": "1970-01-01"}, {"plate": "7ABC123"}, {"plate": "7ABC123", "from": "2020-01-01"},
                      {"sites": ["gate-1"], "from": "1970-01-01", "to": TODAY}):
        r = officer.post("/v1/holds", json={"case_number": "DR-1", "reason": "r", "filter": selection})
        assert r.status_code == 400 and "bounded" in r.json()["error"], selection
    assert policy.store.count("legal_hold_reads") == 0
    narrow = officer.post("/v1/holds", json={"case_number": "DR-1", "reason": "r",
                                             "filter": {"plate": "7ABC123", "from": "2026-01-01", "to": TODAY}})
    broad = officer.post("/v1/holds", json={"case_number": "DR-2", "reason": "r",
                                            "filter": {"plate": "7AB*", "from": "2000-01-01", "to": TODAY}})
    assert narrow.status_code == 201 and broad.status_code == 201
    report = _report(policy.user("aud.ray", "auditor"))
    flagged = {h["case_number"]: h["broad"] for h in report["holds_placed"]}
    assert flagged["DR-1"] == [] and "partial plate 7AB*" in flagged["DR-2"]
    assert any(b.startswith("window of") for b in flagged["DR-2"])
    text = _report(policy.user("aud.two", "auditor"), format="text")
    assert "BROAD: partial plate 7AB*" in text


# -- item 12: refused attempts are audited ---------------------------------------------------------
def test_refused_attempts_are_audited_without_secrets(policy, capsys):
    ids = insert_reads(policy.engine, [{"plate": "7ABC123"}])
    lapsed = policy.user("ofc.old", "officer", trained=False)
    officer = policy.user("ofc.lee", "officer")
    admin = policy.user("adm.kim", "admin")
    hold = officer.post("/v1/holds", json={"case_number": "DR-1", "reason": "r", "read_ids": ids}).json()
    cmdr = policy.user("cmdr.reyes", "commander")
    agency = cmdr.post("/v1/agencies", json={"name": "Harbor PD", "kind": "law_enforcement",
                                             "california_public": True}).json()
    req = cmdr.post("/v1/sharing/requests", json={"agency_id": agency["id"], "requester_name": "Det. Cruz",
                                                  "purpose": "theft", "query": {"plate": "7ABC123"}}).json()
    policy.user("cmdr.ng", "commander").post(f"/v1/sharing/requests/{req['id']}/decision",
                                             json={"approve": True, "reason": "ok"})

    assert lapsed.post("/v1/search", json={**SEARCH, "plate": "7ABC123"}).status_code == 403
    assert admin.post(f"/v1/holds/{hold['id']}/evidence").status_code == 403
    assert officer.post(f"/v1/sharing/requests/{req['id']}/release").status_code == 403
    assert officer.post("/v1/search", json={"case_number": "DR-1", "plate": "7ABC123"}).status_code == 400

    rows = policy.audit_rows("refused")
    got = [(e["username"], e["query"]["permission"], e["query"].get("path")) for e in rows]
    assert got == [("ofc.old", "reads.search", "/v1/search"),
                   ("adm.kim", "evidence.export", f"/v1/holds/{hold['id']}/evidence"),
                   ("ofc.lee", "sharing.release", f"/v1/sharing/requests/{req['id']}/release"),
                   ("ofc.lee", "reads.search", "/v1/search")]
    assert "training" in rows[0]["query"]["reason"] and "purpose" in rows[3]["query"]["reason"]
    assert all(e["agency"] for e in rows)
    assert PASSWORD not in json.dumps(policy.audit_rows())
    assert policy.audit_rows("search") == []                            # nothing was searched
    # refusals are ordinary, signed links of the chain, and the report lists them
    from central import checkpoints
    assert checkpoints.verify(policy.engine, policy.store.keys.signing.public_key(),
                              policy.store.home / "audit" / "checkpoints.jsonl").ok
    report = _report(policy.user("aud.ray", "auditor"))
    assert [x["username"] for x in report["refusals"]] == ["ofc.old", "adm.kim", "ofc.lee", "ofc.lee"]
    assert report["audit_chain"]["ok"] and report["signed_head"]


# -- item 14: the releaser named; an expired training record refused --------------------------------
def test_report_names_who_released_a_share(policy, capsys):
    insert_reads(policy.engine, [{"plate": "7ABC123"}])
    officer = policy.user("ofc.lee", "officer")
    cmdr = policy.user("cmdr.reyes", "commander")
    sgt = policy.user("sgt.park", "supervisor")
    agency = cmdr.post("/v1/agencies", json={"name": "Harbor PD", "kind": "law_enforcement",
                                             "california_public": True}).json()
    req = officer.post("/v1/sharing/requests", json={"agency_id": agency["id"], "requester_name": "Det. Cruz",
                                                     "purpose": "theft", "query": {"plate": "7ABC123"}}).json()
    assert cmdr.post(f"/v1/sharing/requests/{req['id']}/decision", json={"approve": True, "reason": "ok"}).status_code == 200
    assert sgt.post(f"/v1/sharing/requests/{req['id']}/release").status_code == 200
    auditor = policy.user("aud.ray", "auditor")
    text = _report(auditor, format="text")
    assert "approved by cmdr.reyes" in text and "released 1 reads by sgt.park" in text
    rows = list(csv.DictReader(io.StringIO(_report(auditor, format="csv"))))
    release = [r for r in rows if r["section"] == "sharing_release"]
    assert [(r["user"], r["count"]) for r in release] == [("sgt.park", "1")]


def test_an_expired_training_record_is_refused(policy):
    admin = policy.user("adm.kim", "admin")
    policy.add_user("ofc.new", "officer", trained=False)
    today = date.today()
    r = admin.post("/v1/users/ofc.new/training", json={"course": "ALPR 101", "completed": str(today - timedelta(days=400)),
                                                       "expires": str(today - timedelta(days=35))})
    assert r.status_code == 400 and "expired" in r.json()["error"]
    with pytest.raises(ValueError, match="expired"):
        training.record(policy.engine, "ofc.new", "ALPR 101", today - timedelta(days=400), today - timedelta(days=1),
                        TEST_ADMIN)
    assert training.list_records(policy.engine, "ofc.new") == []
    assert audit.verify(policy.engine).ok
