"""Every access is recorded (policy 462.5(a), Civil Code 1798.90.52): who, agency, when, what was
queried, purpose, case number, result count; append-only and hash-chained. Tries to edit, delete and
re-order entries, and to read the log without the right role (SQLite and PostgreSQL)."""
from __future__ import annotations

import json
import threading

import pytest
import sqlalchemy as sa

from central import audit
from central.clock import parse_time
from central.schema import audit_log
from policy_fixtures import AGENCY, SEARCH, insert_reads, tamper


def _accesses(policy) -> None:
    """One search, one view and one alert view by an officer."""
    insert_reads(policy.engine, [{"plate": "7ABC123"}, {"plate": "7ABD123"}, {"plate": "8XYZ999"}])
    officer = policy.user("ofc.lee", "officer")
    r = officer.post("/v1/search", json={**SEARCH, "plate": "7AB?123", "from": "2020-01-01", "sites": ["gate-1"]})
    assert r.status_code == 200 and r.json()["count"] == 2
    rid = r.json()["results"][0]["read_id"]
    assert officer.post(f"/v1/reads/{rid}/view", json=SEARCH).status_code == 200
    assert officer.get("/v1/alerts").status_code == 200
    return rid


def test_each_access_is_logged_with_who_what_why_and_count(policy):
    rid = _accesses(policy)
    search, view, alert_view = (policy.audit_rows(a)[0] for a in ("search", "view", "alert_view"))
    assert (search["username"], search["agency"], search["purpose"], search["case_number"], search["result_count"]) \
        == ("ofc.lee", AGENCY, "criminal_investigation", "DR-2026-0042", 2)
    assert search["query"]["plate"] == "7AB?123" and search["query"]["sites"] == ["gate-1"]
    assert search["query"]["from"].startswith("2020-01-01T00:00:00") and search["at"].endswith("Z")
    assert (view["query"], view["result_count"], view["purpose"]) == ({"read_id": rid}, 1, "criminal_investigation")
    assert alert_view["result_count"] == 0
    assert audit.verify(policy.engine).ok


def test_database_refuses_update_and_delete_of_the_log(policy):
    _accesses(policy)
    for statement in ("UPDATE audit_log SET result_count = 0", "DELETE FROM audit_log"):
        with pytest.raises(sa.exc.DatabaseError, match="append-only"):
            with policy.engine.begin() as conn:
                conn.exec_driver_sql(statement)
    assert audit.verify(policy.engine).ok


@pytest.mark.parametrize("attack, problem, bad", [
    ("UPDATE audit_log SET result_count = 99 WHERE id = {n}", "edited", "n"),
    ("UPDATE audit_log SET username = 'someone.else' WHERE id = {n}", "edited", "n"),
    ("DELETE FROM audit_log WHERE id = {n}", "deleted", "n+1"),
    ("DELETE FROM audit_log WHERE id = 1", "deleted", "2"),
])
def test_verify_names_the_first_edited_or_deleted_entry(policy, capsys, attack, problem, bad):
    _accesses(policy)
    n = policy.audit_rows("search")[0]["id"]
    tamper(policy.engine, attack.format(n=n))
    verdict = audit.verify(policy.engine)
    assert not verdict.ok and verdict.problem == problem and verdict.bad_id == eval(bad, {"n": n})
    capsys.readouterr()
    assert policy.store.cli("audit", "verify", "--json") == 1
    out = json.loads(capsys.readouterr().out)
    assert out["bad_id"] == verdict.bad_id and out["problem"] == problem


def test_verify_finds_reordered_entries_and_rehashed_edits(policy):
    _accesses(policy)
    rows = policy.audit_rows()
    a, b = rows[-3]["id"], rows[-2]["id"]
    tamper(policy.engine, f"UPDATE audit_log SET id = -1 WHERE id = {a}", f"UPDATE audit_log SET id = {a} WHERE id = {b}",
           f"UPDATE audit_log SET id = {b} WHERE id = -1")
    verdict = audit.verify(policy.engine)
    assert (verdict.ok, verdict.problem, verdict.bad_id) == (False, "reordered", a)

    # an edit whose hash is recomputed is caught at the next entry
    tamper(policy.engine, f"UPDATE audit_log SET id = -1 WHERE id = {a}", f"UPDATE audit_log SET id = {a} WHERE id = {b}",
           f"UPDATE audit_log SET id = {b} WHERE id = -1")
    assert audit.verify(policy.engine).ok
    target = policy.audit_rows("search")[0]
    forged = {**target, "result_count": 0}
    forged["at"] = parse_time(target["at"])
    new_hash = audit.entry_hash(target["prev_hash"], forged)
    tamper(policy.engine, f"UPDATE audit_log SET result_count = 0, hash = '{new_hash}' WHERE id = {target['id']}")
    verdict = audit.verify(policy.engine)
    assert (verdict.problem, verdict.bad_id) == ("broken", target["id"] + 1)


def test_a_cut_off_tail_is_caught_by_an_earlier_head(policy, capsys):
    _accesses(policy)
    head = audit.verify(policy.engine)
    assert policy.store.cli("audit", "verify", "--expect", f"{head.head_id}:{head.head_hash}") == 0
    tamper(policy.engine, f"DELETE FROM audit_log WHERE id = {head.head_id}")
    assert audit.verify(policy.engine).ok                    # the chain alone cannot see a missing tail ...
    assert policy.store.cli("audit", "verify", "--expect", f"{head.head_id}:{head.head_hash}") == 1   # ... the head can
    assert "gone" in capsys.readouterr().out


def test_only_auditors_and_the_administrator_read_the_log(policy):
    _accesses(policy)
    for role in ("officer", "supervisor", "commander"):
        client = policy.user(f"u.{role}", role)
        assert client.get("/v1/audit").status_code == 403, role
        assert client.get("/v1/audit/verify").status_code == 403, role
        assert client.get("/v1/audit/report", params={"from": "2020-01-01", "to": "2099-01-01"}).status_code == 403
    assert policy.anonymous().get("/v1/audit").status_code == 401
    for role in ("auditor", "admin"):
        client = policy.user(f"u.{role}", role)
        rows = client.get("/v1/audit", params={"action": "search"}).json()
        assert [r["username"] for r in rows] == ["ofc.lee"]
        assert client.get("/v1/audit/verify").json()["ok"] is True
    reads_of_log = policy.audit_rows("audit_read")
    assert [e["username"] for e in reads_of_log] == ["u.auditor", "u.admin"]     # reading the log is logged too


def test_concurrent_appends_keep_one_chain(policy):
    insert_reads(policy.engine, [{"plate": "7ABC123"}])
    officer = policy.user("ofc.lee", "officer")
    errors = []

    def go():
        for _ in range(5):
            r = officer.post("/v1/search", json={**SEARCH, "plate": "7ABC123"})
            if r.status_code != 200:
                errors.append(r.text)
    threads = [threading.Thread(target=go) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    verdict = audit.verify(policy.engine)
    assert verdict.ok and len(policy.audit_rows("search")) == 20
    with policy.engine.connect() as conn:
        ids = list(conn.execute(sa.select(audit_log.c.id).order_by(audit_log.c.id)).scalars())
    assert ids == list(range(1, len(ids) + 1))
