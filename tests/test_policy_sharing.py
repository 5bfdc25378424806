"""Sharing (policy 462.7, Civil Code 1798.90.55): agencies on file; requests with agency, requester
and purpose; only the commander or designee decides; data only for an approved request to an
eligible agency; other agencies refused with the reason; everything kept on file (SQLite and
PostgreSQL)."""
from __future__ import annotations

from datetime import date, timedelta


from central.schema import agencies
from policy_fixtures import insert_reads

WANTED = {"plate": "7ABC*", "from": "2020-01-01"}


def _agency(client, name, kind, california_public=True, **agreement):
    r = client.post("/v1/agencies", json={"name": name, "kind": kind, "california_public": california_public,
                                          **agreement})
    assert r.status_code == 201, r.text
    return r.json()


def _request(client, agency_id, **extra):
    return client.post("/v1/sharing/requests", json={"agency_id": agency_id, "requester_name": "Det. R. Cruz",
                                                     "purpose": "stolen vehicle ring, case 24-118",
                                                     "query": WANTED, **extra})


def test_only_eligible_approved_requests_release_data_and_all_is_kept(policy):
    insert_reads(policy.engine, [{"plate": "7ABC123"}, {"plate": "7ABC999"}, {"plate": "8XYZ000"}])
    cmdr = policy.user("cmdr.reyes", "commander")
    officer = policy.user("ofc.lee", "officer")
    sgt = policy.user("sgt.park", "supervisor")
    today = date.today()
    lbpd = _agency(cmdr, "Long Beach PD", "law_enforcement", agreement_signed_on=str(today - timedelta(days=10)),
                   agreement_expires_on=str(today + timedelta(days=355)))
    da = _agency(cmdr, "LA County District Attorney", "prosecutorial")
    insurer = _agency(cmdr, "Acme Insurance", "other", california_public=False)
    fbi = _agency(cmdr, "Federal agency field office", "law_enforcement", california_public=False)
    assert (lbpd["eligible"], lbpd["agreement_current"], da["eligible"], insurer["eligible"], fbi["eligible"]) == \
        (True, True, True, False, False)
    assert officer.post("/v1/agencies", json={"name": "x", "kind": "other", "california_public": True}).status_code == 403

    # ineligible agencies: refused on receipt, with the reason, and kept on file
    for agency, word in ((insurer, "not a law-enforcement or prosecutorial"), (fbi, "not a California public agency")):
        r = _request(officer, agency["id"])
        assert r.status_code == 201
        doc = r.json()
        assert doc["status"] == "refused" and word in doc["decision_reason"] and "public-records" in doc["decision_reason"]
        assert cmdr.post(f"/v1/sharing/requests/{doc['id']}/decision",
                         json={"approve": True, "reason": "override"}).status_code == 409
        assert cmdr.post(f"/v1/sharing/requests/{doc['id']}/release").status_code == 409

    # an eligible request: only the commander decides; nothing is released before approval
    req = _request(officer, lbpd["id"], case_number="LB-24-118").json()
    assert req["status"] == "pending" and req["requester_name"] == "Det. R. Cruz"
    assert cmdr.post(f"/v1/sharing/requests/{req['id']}/release").status_code == 409
    for client in (officer, sgt, policy.user("adm.kim", "admin")):
        assert client.post(f"/v1/sharing/requests/{req['id']}/decision",
                           json={"approve": True, "reason": "ok"}).status_code == 403
    approved = cmdr.post(f"/v1/sharing/requests/{req['id']}/decision",
                         json={"approve": True, "reason": "agreement on file, purpose official"}).json()
    assert (approved["status"], approved["decided_by"], approved["basis"]) == ("approved", "cmdr.reyes", "agreement")
    assert cmdr.post(f"/v1/sharing/requests/{req['id']}/decision",
                     json={"approve": False, "reason": "changed my mind"}).status_code == 409
    assert officer.post(f"/v1/sharing/requests/{req['id']}/release").status_code == 403
    released = sgt.post(f"/v1/sharing/requests/{req['id']}/release")
    assert released.status_code == 200
    assert sorted(r["plate"] for r in released.json()["reads"]) == ["7ABC123", "7ABC999"]
    assert released.json()["request"]["released_count"] == 2
    assert sgt.post(f"/v1/sharing/requests/{req['id']}/release").status_code == 409      # once

    # a refusal by the commander, and a written request without an agreement (basis: written_request)
    refused = _request(officer, da["id"]).json()
    r = cmdr.post(f"/v1/sharing/requests/{refused['id']}/decision", json={"approve": False, "reason": "no case link"})
    assert r.json()["status"] == "refused"
    written = _request(officer, da["id"]).json()
    assert cmdr.post(f"/v1/sharing/requests/{written['id']}/decision",
                     json={"approve": True, "reason": "DA filing"}).json()["basis"] == "written_request"

    on_file = {r["id"]: r for r in cmdr.get("/v1/sharing/requests").json()}
    assert len(on_file) == 5
    assert [on_file[i]["status"] for i in sorted(on_file)] == ["refused", "refused", "released", "refused", "approved"]
    release_log = policy.audit_rows("share_release")[0]
    assert (release_log["username"], release_log["result_count"], release_log["case_number"]) == \
        ("sgt.park", 2, "LB-24-118")
    assert len(policy.audit_rows("share_decision")) == 3 and len(policy.audit_rows("share_request")) == 5


def test_agency_that_becomes_ineligible_gets_nothing(policy):
    insert_reads(policy.engine, [{"plate": "7ABC123"}])
    cmdr = policy.user("cmdr.reyes", "commander")
    agency = _agency(cmdr, "Harbor PD", "law_enforcement")
    req = _request(policy.user("ofc.lee", "officer"), agency["id"]).json()
    assert cmdr.post(f"/v1/sharing/requests/{req['id']}/decision", json={"approve": True, "reason": "ok"}).status_code == 200
    with policy.engine.begin() as conn:
        conn.execute(agencies.update().values(kind="other"))
    r = cmdr.post(f"/v1/sharing/requests/{req['id']}/release")
    assert r.status_code == 409 and "public-records" in r.json()["error"]
    assert policy.audit_rows("share_release") == []


def test_whoever_records_a_request_neither_decides_nor_releases_it(policy):
    insert_reads(policy.engine, [{"plate": "7ABC123"}])
    cmdr = policy.user("cmdr.reyes", "commander")
    deputy = policy.user("cmdr.ortiz", "commander")
    agency = _agency(cmdr, "Harbor PD", "law_enforcement")
    req = _request(cmdr, agency["id"]).json()
    r = cmdr.post(f"/v1/sharing/requests/{req['id']}/decision", json={"approve": True, "reason": "mine"})
    assert r.status_code == 403 and "recorded request" in r.json()["error"]
    assert cmdr.get(f"/v1/sharing/requests/{req['id']}").json()["status"] == "pending"
    assert deputy.post(f"/v1/sharing/requests/{req['id']}/decision",
                       json={"approve": True, "reason": "reviewed"}).status_code == 200
    r = cmdr.post(f"/v1/sharing/requests/{req['id']}/release")
    assert r.status_code == 403 and policy.audit_rows("share_release") == []
    assert deputy.post(f"/v1/sharing/requests/{req['id']}/release").json()["request"]["released_count"] == 1


def test_request_must_name_requester_purpose_and_what(policy):
    cmdr = policy.user("cmdr.reyes", "commander")
    agency = _agency(cmdr, "Harbor PD", "law_enforcement")
    base = {"agency_id": agency["id"], "requester_name": "Det. Cruz", "purpose": "case 1", "query": WANTED}
    for change in ({"requester_name": ""}, {"purpose": " "}, {"query": {}}, {"query": {"plate": "*"}},
                   {"agency_id": 999}):
        r = cmdr.post("/v1/sharing/requests", json={**base, **change})
        assert r.status_code in (400, 404), change
    assert cmdr.get("/v1/sharing/requests").json() == []
    assert policy.store.cli("agencies", "add", "Torrance PD", "--kind", "law_enforcement", "--california-public") == 0
    assert [a["name"] for a in cmdr.get("/v1/agencies").json()] == ["Harbor PD", "Torrance PD"]
