"""Hot lists and alerts (policy 462.3(c)(f)): exact and partial entries with reason, source, who and
expiry; CSV import with per-line errors; ingest raises alerts that stay UNVERIFIED until an officer
records the CLETS check (SQLite and PostgreSQL)."""
from __future__ import annotations

import base64
from datetime import date, datetime, timedelta, timezone

import requests

from central.alerts import NOTICE, REJECTED_NOTICE
from central.schema import hotlist_entries
from central_fixtures import JPEG, batch_body, enrol_unit, make_read
from policy_fixtures import insert_reads
from unit.uplink import SignedClient

TOMORROW = str(date.today() + timedelta(days=1))
WHY = {"purpose": "stolen_vehicle", "case_number": "DR-2026-0042"}


def ingest(policy, unit, *plates: str) -> list[str]:
    reads = [make_read(unit, plate=p, candidates=[{"plate": p, "score": 0.9}]) for p in plates]
    r = SignedClient(policy.url, unit.unit_id, unit.key).request("POST", "/v1/reads", batch_body(reads),
                                                                   {"Content-Type": "application/json"})
    assert r.status_code == 200 and {x["status"] for x in r.json()["results"]} == {"stored"}, r.text
    return [x[0] for x in reads]


def test_entries_carry_reason_source_who_and_expiry(policy):
    officer = policy.user("inv.diaz", "officer")
    r = officer.post("/v1/hotlist/entries", json={"plate": "7ab?12*", "reason": "stolen vehicle", "source": "CLETS SVS",
                                                  "expires": TOMORROW, "purpose": "stolen_vehicle", "case_number": "DR-1"})
    assert r.status_code == 201, r.text
    entry = r.json()
    assert (entry["pattern"], entry["reason"], entry["source"], entry["entered_by"], entry["case_number"]) == \
        ("7AB?12*", "stolen_vehicle", "CLETS SVS", "inv.diaz", "DR-1")
    assert entry["category"] == entry["reason"] and entry["purpose"] == "stolen_vehicle"     # one word, two names
    assert entry["expires_at"].startswith(TOMORROW) and entry["note"] == "stolen vehicle"      # the label units show
    by_category = officer.post("/v1/hotlist/entries", json={"plate": "8ZZZ111", "category": "wanted", "source": "NCIC",
                                                            "note": "armed", **WHY})
    assert by_category.status_code == 201 and by_category.json()["reason"] == "wanted"
    assert officer.delete(f"/v1/hotlist/entries/{by_category.json()['id']}").status_code == 200
    for body in ({"plate": "7AB?12*", "reason": "wanted", "source": "x", **WHY},                # already listed
                 {"plate": "7A*", "reason": "wanted", "source": "x", **WHY},                    # too vague
                 {"plate": "7ABC123", "reason": "looked suspicious", "source": "x", **WHY},     # not a policy reason
                 {"plate": "7ABC123", "reason": "wanted", "source": "", **WHY},
                 {"plate": "7ABC123", "reason": "wanted", "source": "x", "purpose": "curiosity", "case_number": "DR-1"},
                 {"plate": "7ABC123", "reason": "wanted", "source": "x", "purpose": "stolen_vehicle", "case_number": ""},
                 {"plate": "7ABC123", "reason": "wanted", "source": "x"},                       # no purpose nor case
                 {"plate": "7ABC123", "reason": "wanted", "source": "x", "expires": "2020-01-01", **WHY}):
        assert officer.post("/v1/hotlist/entries", json=body).status_code in (400, 409, 422), body
    auditor = policy.user("aud.ray", "auditor")
    assert auditor.post("/v1/hotlist/entries", json={"plate": "1XYZ999", "reason": "wanted",
                                                     "source": "x", **WHY}).status_code == 403
    listed = officer.get("/v1/hotlist/entries").json()
    assert [e["pattern"] for e in listed] == ["7AB?12*"]
    assert officer.delete(f"/v1/hotlist/entries/{entry['id']}").status_code == 200
    assert officer.get("/v1/hotlist/entries").json() == []
    actions = [e["action"] for e in policy.audit_rows()]
    assert {"hotlist_add", "hotlist_view", "hotlist_remove"} <= set(actions)


def test_csv_import_reports_each_bad_line(policy):
    officer = policy.user("inv.diaz", "officer")
    csv_text = ("plate,category,purpose,case_number,source,expires,note\n"
                "7ABC123,stolen_vehicle,stolen_vehicle,DR-1,CLETS,,\n"
                "7AB?12*,AMBER,missing_person,AMBER-2026-14,CHP,%s,AMBER 2026-14\n"
                "bad plate!,wanted,wanted_vehicle,DR-2,NCIC,,\n"
                "8XYZ999,jaywalking,wanted_vehicle,DR-2,NCIC,,\n"
                "9QRS111,wanted,wanted_vehicle,DR-2,,,\n"
                "1DEF222,missing person,missing_person,DR-3,NCIC,not-a-date,\n"
                "7ABC123,wanted,wanted_vehicle,DR-2,NCIC,,\n"
                "2GHI333,stolen plate,stolen_plate,DR-4,NCIC,,,extra\n"
                "3JKL444,stolen plate,joyride,DR-4,NCIC,,\n"
                "4MNO555,stolen plate,stolen_plate,,NCIC,,\n") % TOMORROW
    r = officer.post("/v1/hotlist/import", data=csv_text.encode(), headers={"Content-Type": "text/csv"})
    assert r.status_code == 200, r.text
    result = r.json()
    assert [a["pattern"] for a in result["added"]] == ["7ABC123", "7AB?12*"]
    assert [e["line"] for e in result["errors"]] == [4, 5, 6, 7, 8, 9, 10, 11]
    errors = {e["line"]: e["error"] for e in result["errors"]}
    assert "plate" in errors[4] and "reason" in errors[5] and "source" in errors[6] and "time" in errors[7]
    assert "repeats line 2" in errors[8] and "more fields" in errors[9]
    assert errors[10].startswith("purpose") and errors[11].startswith("case_number")
    entries = {e["pattern"]: e for e in officer.get("/v1/hotlist/entries").json()}
    amber = entries["7AB?12*"]
    assert (amber["reason"], amber["note"], amber["purpose"], amber["case_number"]) == \
        ("amber", "AMBER 2026-14", "missing_person", "AMBER-2026-14")
    again = officer.post("/v1/hotlist/import", data=b"plate,reason,purpose,case_number,source\n"
                                                     b"7ABC123,wanted,wanted_vehicle,DR-9,NCIC\n").json()
    assert again["added"] == [] and "already on the hot list" in again["errors"][0]["error"]
    bad_header = officer.post("/v1/hotlist/import", data=b"plates,why\n7ABC123,x\n")
    assert bad_header.status_code == 400 and "header" in bad_header.json()["error"]


def test_ingest_raises_alerts_that_stay_unverified_until_an_officer_records_clets(policy):
    officer = policy.user("ofc.lee", "officer")
    assert officer.post("/v1/hotlist/entries", json={"plate": "7AB?12*", "reason": "stolen_vehicle",
                                                     "source": "CLETS", **WHY}).status_code == 201
    assert officer.post("/v1/hotlist/entries", json={"plate": "5MIS555", "reason": "missing_person", "source": "NCIC",
                                                     "expires": TOMORROW, "purpose": "missing_person",
                                                     "case_number": "MP-77"}).status_code == 201
    unit = enrol_unit(policy.url, policy.store)
    ids = ingest(policy, unit, "7ABX129", "7ABC12", "8ABC123", "5MIS555")
    alerts = officer.get("/v1/alerts").json()
    assert sorted((a["plate"], a["pattern"], a["category"]) for a in alerts) == [
        ("5MIS555", "5MIS555", "missing_person"), ("7ABC12", "7AB?12*", "stolen_vehicle"),
        ("7ABX129", "7AB?12*", "stolen_vehicle")]
    assert all(a["status"] == "unverified" and a["notice"] == NOTICE for a in alerts)
    assert {a["read_id"] for a in alerts} == {ids[0], ids[1], ids[3]}
    # what an officer needs at the roadside, in the API too: unit, lane, direction, the entry, the crop
    missing = next(a for a in alerts if a["plate"] == "5MIS555")
    assert (missing["unit_id"], missing["lane"], missing["direction"]) == (unit.unit_id, "1", "in")
    assert missing["entry"]["case_number"] == "MP-77" and missing["entry"]["note"] == "missing person"
    assert base64.b64decode(missing["crop_jpeg_b64"]) == JPEG
    # every view is logged under the purpose and case of the entries whose alerts it showed
    views = policy.audit_rows("alert_view")
    assert {(v["purpose"], v["case_number"], v["result_count"]) for v in views} == {
        ("missing_person", "MP-77", 1), ("stolen_vehicle", "DR-2026-0042", 2)}

    target = alerts[0]["id"]
    assert officer.post(f"/v1/alerts/{target}/verification", json={"outcome": "maybe", "note": "x"}).status_code == 422
    assert officer.post(f"/v1/alerts/{target}/verification",
                        json={"outcome": "confirmed", "note": " "}).status_code == 400
    admin = policy.user("adm.kim", "admin")
    assert admin.post(f"/v1/alerts/{target}/verification",
                      json={"outcome": "confirmed", "note": "x"}).status_code == 403
    assert officer.get(f"/v1/alerts/{target}").json()["status"] == "unverified"
    done = officer.post(f"/v1/alerts/{target}/verification",
                        json={"outcome": "not_confirmed", "note": "CLETS: plate recovered 2026-02-01, cleared"})
    assert done.status_code == 200
    doc = done.json()
    assert (doc["status"], doc["verified_by"], doc["verification_note"]) == \
        ("not_confirmed", "ofc.lee", "CLETS: plate recovered 2026-02-01, cleared")
    assert doc["verified_at"] and doc["notice"] == REJECTED_NOTICE
    other = policy.user("sgt.park", "supervisor")
    again = other.post(f"/v1/alerts/{target}/verification", json={"outcome": "confirmed", "note": "overwrite"})
    assert again.status_code == 409                                   # recorded once, never overwritten
    assert officer.get(f"/v1/alerts/{target}").json()["verified_by"] == "ofc.lee"
    assert len(officer.get("/v1/alerts", params={"status": "unverified"}).json()) == 2
    assert policy.audit_rows("alert_verified")[0]["query"]["outcome"] == "not_confirmed"


def test_expired_and_removed_entries_raise_nothing_and_leave_the_unit_list(policy):
    officer = policy.user("ofc.lee", "officer")
    r = officer.post("/v1/hotlist/entries", json={"plate": "7ABC123", "reason": "wanted", "source": "NCIC",
                                                  "expires": TOMORROW, **WHY})
    with policy.engine.begin() as conn:
        conn.execute(hotlist_entries.update().values(expires_at=datetime(2020, 1, 1, tzinfo=timezone.utc)))
    unit = enrol_unit(policy.url, policy.store)
    ingest(policy, unit, "7ABC123")
    assert officer.get("/v1/alerts").json() == []
    client = SignedClient(policy.url, unit.unit_id, unit.key)
    assert client.request("GET", "/v1/hotlist").json()["entries"] == []
    # an expired entry may be entered again, and then it alerts
    assert officer.post("/v1/hotlist/entries", json={"plate": "7ABC123", "reason": "wanted",
                                                     "source": "NCIC", **WHY}).status_code == 201
    assert r.json()["id"] == officer.get("/v1/hotlist/entries").json()[0]["id"]
    ingest(policy, unit, "7ABC123")
    assert len(officer.get("/v1/alerts").json()) == 1
    assert [e["pattern"] for e in client.request("GET", "/v1/hotlist").json()["entries"]] == ["7ABC123"]


def test_untrained_or_anonymous_cannot_see_alerts(policy):
    insert_reads(policy.engine, [{"plate": "7ABC123"}])
    assert requests.get(policy.url + "/v1/alerts", timeout=10).status_code == 401
    untrained = policy.user("ofc.new", "officer", trained=False)
    assert untrained.get("/v1/alerts").status_code == 403
    assert untrained.get("/v1/hotlist/entries").status_code == 403


def test_a_new_entry_looks_back_over_recent_reads_when_configured(policy):
    now = datetime.now(timezone.utc)
    old, recent, other = insert_reads(policy.engine, [
        {"plate": "7ABC123", "captured_at": now - timedelta(days=10)},
        {"plate": "7ABC123", "captured_at": now - timedelta(days=2), "lane": "2", "direction": "out"},
        {"plate": "8XYZ000", "captured_at": now - timedelta(days=1)}])
    officer = policy.user("inv.diaz", "officer")
    # the store's default is 0 (off): the API adds the entry and raises nothing from the past
    r = officer.post("/v1/hotlist/entries", json={"plate": "8XYZ000", "reason": "wanted", "source": "NCIC", **WHY})
    assert r.status_code == 201 and r.json()["retro_alerts"] == 0 and officer.get("/v1/alerts").json() == []
    from central import audit, hotlist
    entry = hotlist.add(policy.engine, "7ABC1*", reason="stolen_vehicle", purpose="stolen_vehicle",
                        case_number="DR-55", source="CLETS SVS", by=audit.Principal("inv.diaz", "LAPP"), retro_days=7)
    assert entry["retro_alerts"] == 1
    alerts = officer.get("/v1/alerts").json()
    assert [(a["read_id"], a["lane"], a["direction"], a["entry"]["case_number"]) for a in alerts] == \
        [(recent, "2", "out", "DR-55")]
    check = policy.audit_rows("hotlist_retro_check")
    assert [(c["purpose"], c["case_number"], c["result_count"], c["query"]["days"]) for c in check] == \
        [("stolen_vehicle", "DR-55", 1, 7)]
    assert old not in {a["read_id"] for a in alerts} and other not in {a["read_id"] for a in alerts}


def test_a_confirmed_alert_no_longer_carries_the_unverified_notice(policy):
    officer = policy.user("ofc.lee", "officer")
    assert officer.post("/v1/hotlist/entries", json={"plate": "7ABC123", "reason": "wanted", "source": "NCIC",
                                                     **WHY}).status_code == 201
    unit = enrol_unit(policy.url, policy.store)
    ingest(policy, unit, "7ABC123")
    alert = officer.get("/v1/alerts").json()[0]
    assert alert["notice"] == NOTICE
    done = officer.post(f"/v1/alerts/{alert['id']}/verification", json={"outcome": "confirmed", "note": "CLETS: stolen"})
    assert done.json()["notice"] is None and done.json()["status"] == "confirmed"
    assert officer.get(f"/v1/alerts/{alert['id']}").json()["notice"] is None
    verified = policy.audit_rows("alert_verified")[0]
    assert (verified["purpose"], verified["case_number"]) == ("stolen_vehicle", "DR-2026-0042")
