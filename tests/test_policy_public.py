"""Audits and the public (policy 462.5(c), 462.6, 462.2.1(g)): the policy is public, nothing else is;
audit reports on demand (text, CSV) and on a schedule; the API documented by OpenAPI (SQLite and
PostgreSQL)."""
from __future__ import annotations

import csv
import io
import json
import re
from datetime import date, datetime, timedelta, timezone

import requests

from central import schedule
from central.config import POLICY_FILE
from policy_fixtures import SEARCH, insert_reads

SHARED_POLICY = POLICY_FILE.parents[2].parent / "shared" / "policy" / "alpr-policy-462.txt"


def test_policy_is_served_to_anyone(policy):
    r = requests.get(policy.url + "/policy", timeout=10)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert "462.7 RELEASING ALPR DATA" in r.text and r.text == POLICY_FILE.read_text()
    if SHARED_POLICY.exists():                       # the shipped copy is the department's text
        assert POLICY_FILE.read_text() == SHARED_POLICY.read_text()


def test_every_other_route_needs_a_login_or_a_unit(policy):
    doc = requests.get(policy.url + "/openapi.json", timeout=10).json()
    public = {("get", "/policy"), ("post", "/v1/auth/login"), ("post", "/v1/enroll")}
    unit_signed = {("post", "/v1/reads"), ("post", "/v1/heartbeat"), ("get", "/v1/hotlist")}
    checked = 0
    for path, methods in doc["paths"].items():
        concrete = re.sub(r"\{[^}]+\}", "1", path)
        for method in methods:
            if (method, path) in public:
                continue
            r = requests.request(method.upper(), policy.url + concrete, json={}, timeout=10)
            assert r.status_code == 401, (method, path, r.status_code, r.text)
            if (method, path) not in unit_signed:
                assert r.headers.get("www-authenticate") == "Bearer", (method, path)
                r = requests.request(method.upper(), policy.url + concrete, json={},
                                     headers={"Authorization": "Bearer forged-token"}, timeout=10)
                assert r.status_code == 401, (method, path)
            checked += 1
    assert checked >= 35
    assert requests.post(policy.url + "/v1/auth/login", json={"username": "x", "password": "y"}).status_code == 401
    # bearer scheme documented; request bodies described
    assert "HTTPBearer" in doc["components"]["securitySchemes"]
    search = doc["paths"]["/v1/search"]["post"]
    assert search["security"] and "requestBody" in search
    assert "purpose" in json.dumps(doc["components"]["schemas"]["SearchIn"])


def test_audit_report_text_and_csv(policy, capsys, tmp_path):
    insert_reads(policy.engine, [{"plate": "7ABC123"}])
    officer = policy.user("ofc.lee", "officer")
    assert officer.post("/v1/search", json={**SEARCH, "plate": "7ABC123"}).status_code == 200
    assert officer.post("/v1/search", json={"purpose": "missing_person", "case_number": "MP-9",
                                            "plate": "7AB*"}).status_code == 200
    assert policy.login("ofc.lee", "not the password").status_code == 401
    cmdr = policy.user("cmdr.reyes", "commander")
    agency = cmdr.post("/v1/agencies", json={"name": "Harbor PD", "kind": "law_enforcement",
                                             "california_public": True}).json()
    req = officer.post("/v1/sharing/requests", json={"agency_id": agency["id"], "requester_name": "Det. Cruz",
                                                  "purpose": "theft ring", "query": {"plate": "7ABC123"}}).json()
    cmdr.post(f"/v1/sharing/requests/{req['id']}/decision", json={"approve": False, "reason": "no nexus"})
    assert policy.store.cli("retention", "run") == 0
    today = date.today().isoformat()

    capsys.readouterr()
    assert policy.store.cli("audit", "report", "--from", today, "--to", today) == 0
    text = capsys.readouterr().out
    assert "Audit chain: intact" in text
    assert re.search(r"ofc\.lee\s+Los Angeles Port Police\s+2\s+\(search 2\)", text)
    assert "criminal_investigation" in text and "missing_person" in text and "MP-9" in text
    assert "refused by cmdr.reyes" in text and "no nexus" in text
    assert re.search(r"run 1 .* done: 0 reads, 0 images, 0 alerts purged", text) and "wrong password" in text

    out = tmp_path / "report.csv"
    assert policy.store.cli("audit", "report", "--from", today, "--to", today, "--format", "csv", "--out", str(out)) == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    sections = {r["section"] for r in rows}
    assert {"audit_chain", "access", "search_purpose", "search", "sharing", "purge", "failed_login"} <= sections
    purposes = {r["item"]: int(r["count"]) for r in rows if r["section"] == "search_purpose"}
    assert purposes == {"criminal_investigation": 1, "missing_person": 1}
    assert policy.store.cli("audit", "report", "--from", "2026-13-01", "--to", today) == 2

    auditor = policy.user("aud.ray", "auditor")
    r = auditor.get("/v1/audit/report", params={"from": today, "to": today, "format": "csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    doc = auditor.get("/v1/audit/report", params={"from": today, "to": today}).json()
    assert doc["alerts"]["raised"] == 0 and len(doc["searches"]) == 2 and doc["audit_chain"]["ok"]
    assert auditor.get("/v1/audit/report", params={"from": today, "to": today, "format": "pdf"}).status_code == 400
    year_ago = (date.today() - timedelta(days=365)).isoformat()
    assert auditor.get("/v1/audit/report", params={"from": year_ago, "to": year_ago}).json()["searches"] == []


def test_schedule_runs_retention_daily_and_writes_last_weeks_report_once(policy, tmp_path):
    now = datetime(2026, 12, 2, 12, 0, tzinfo=timezone.utc)               # a Wednesday noon: +1 h and +1 day stay in its week
    first = schedule.run_due(policy.engine, policy.settings, policy.store.home, now)
    assert first["retention"]["status"] == "done" and first["report"].endswith(".txt")
    start, end = schedule.last_week(now)
    assert start.weekday() == 0 and (end - start).days == 6 and end < now
    assert (policy.store.home / "reports").is_dir()
    assert "ALPR audit report" in open(first["report"]).read()
    signed = policy.store.home / "audit" / "checkpoints.jsonl"          # the report signed the chain's head
    assert len(signed.read_text().splitlines()) == 1
    assert schedule.run_due(policy.engine, policy.settings, policy.store.home, now + timedelta(minutes=30)) == {}
    hour = schedule.run_due(policy.engine, policy.settings, policy.store.home, now + timedelta(hours=1, minutes=1))
    assert set(hour) == {"checkpoint"} and hour["checkpoint"]["at"].startswith("2026-12-02T13:01")   # every hour
    assert len(signed.read_text().splitlines()) == 2
    later = schedule.run_due(policy.engine, policy.settings, policy.store.home, now + timedelta(days=1, minutes=1))
    assert set(later) == {"retention", "checkpoint"}            # Thursday: the same week's report stands
    assert policy.store.cli("schedule", "--once") == 0


def test_config_cli_refuses_retention_below_policy(policy, capsys):
    assert policy.store.cli("config", "set", "retention_years=4") == 2
    assert policy.store.cli("config", "set", "retention_years=7", "session_idle_s=600") == 0
    capsys.readouterr()
    assert policy.store.cli("config", "show", "--json") == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["retention_years"] == 7 and shown["session_idle_s"] == 600
    assert shown["argon2_memory_kib"] == policy.settings.argon2_memory_kib          # other settings kept
    assert policy.store.cli("config", "set", "nonsense=1") == 2
