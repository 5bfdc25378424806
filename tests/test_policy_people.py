"""People and access (policy 462.2.1, 462.3(d)(e), 462.5(a), 462.8): users, passwords, sessions,
lock-out, roles, training. Each test tries to get in where the policy says no (SQLite and PostgreSQL)."""
from __future__ import annotations

import io
import json
from datetime import date, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher

from central import users
from central.schema import training_records, user_sessions, users as users_table

pytest.register_assert_rewrite("central_fixtures", "policy_fixtures")
from policy_fixtures import PASSWORD, SEARCH, TEST_ADMIN, Client, insert_reads  # noqa: E402

pytest_plugins = ["central_fixtures", "policy_fixtures"]


def test_password_is_argon2_and_never_stored(policy):
    policy.add_user("ofc.lee", "officer")
    with policy.engine.connect() as conn:
        stored = conn.execute(sa.select(users_table.c.password_hash)).scalar_one()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert PasswordHasher().verify(stored, PASSWORD)
    with pytest.raises(ValueError, match="at least 12"):
        users.add(policy.engine, policy.settings, username="short", full_name="S", job_title="t", agency="a",
                  role="officer", password="short", by=TEST_ADMIN)
    with pytest.raises(ValueError, match="role"):
        users.add(policy.engine, policy.settings, username="boss", full_name="B", job_title="t", agency="a",
                  role="root", password=PASSWORD, by=TEST_ADMIN)


def test_session_token_is_stored_only_as_hash_and_ends(policy):
    client = policy.user("ofc.lee", "officer")
    token = client.http.headers["Authorization"].split()[1]
    with policy.engine.connect() as conn:
        hashes = list(conn.execute(sa.select(user_sessions.c.token_hash)).scalars())
    assert len(hashes) == 1 and token not in hashes[0] and len(hashes[0]) == 64
    me = client.get("/v1/auth/me").json()
    assert (me["username"], me["role"], me["training_current"]) == ("ofc.lee", "officer", True)

    # expiry: the absolute lifetime has passed
    with policy.engine.begin() as conn:
        conn.execute(user_sessions.update().values(expires_at=datetime.now(timezone.utc) - timedelta(seconds=1)))
    r = client.get("/v1/auth/me")
    assert r.status_code == 401 and "expired" in r.json()["error"]

    # idle: unused longer than session_idle_s
    client = Client(policy.url, policy.login("ofc.lee").json()["token"])
    with policy.engine.begin() as conn:
        conn.execute(user_sessions.update().where(user_sessions.c.ended_at.is_(None)).values(
            last_seen_at=datetime.now(timezone.utc) - timedelta(seconds=policy.settings.session_idle_s + 1)))
    assert client.get("/v1/auth/me").status_code == 401

    # logout
    client = Client(policy.url, policy.login("ofc.lee").json()["token"])
    assert client.post("/v1/auth/logout").status_code == 200
    assert client.get("/v1/auth/me").status_code == 401
    forged = Client(policy.url, "x" * 43)
    assert forged.get("/v1/auth/me").status_code == 401


def test_lockout_after_repeated_failures_even_with_the_right_password(policy):
    """N wrong passwords from one address lock that address out of the account (even the right password
    is refused from it); the account itself locks only when N different addresses have failed."""
    policy.add_user("ofc.lee", "officer")
    n = policy.settings.lockout_failures
    for _ in range(n):
        assert policy.login("ofc.lee", "wrong password!!").status_code == 401
    locked = policy.login("ofc.lee")                         # right password, this address locked out
    assert locked.status_code == 401
    assert users.list_users(policy.engine)[0]["locked_until"] is None
    failed = policy.audit_rows("login_failed")
    assert [e["query"]["reason"] for e in failed] == ["wrong password"] * n + ["locked"]
    assert [e["query"]["scope"] for e in policy.audit_rows("lockout")] == ["address"]
    assert policy.login("ofc.lee", address="127.0.0.2").status_code == 200      # another address: open

    for i in range(n):                                       # n different addresses: the account locks
        assert policy.login("ofc.lee", "wrong password!!", address=f"127.0.1.{i + 1}").status_code == 401
    assert users.list_users(policy.engine)[0]["locked_until"] is not None
    assert policy.login("ofc.lee", address="127.0.0.3").status_code == 401
    assert [e["query"]["scope"] for e in policy.audit_rows("lockout")] == ["address", "account"]
    assert policy.login("nobody.here", address="127.0.0.4").status_code == 401    # unknown users: refused, logged
    assert policy.audit_rows("login_failed")[-1]["username"] == "nobody.here"
    # the lock lapses after lockout_minutes
    with policy.engine.begin() as conn:
        conn.execute(users_table.update().values(locked_until=datetime.now(timezone.utc) - timedelta(seconds=1)))
    assert policy.login("ofc.lee", address="127.0.0.3").status_code == 200


def test_disabled_user_loses_sessions_and_cannot_log_in(policy):
    client = policy.user("ofc.lee", "officer")
    insert_reads(policy.engine, [{"plate": "7ABC123"}])
    assert client.post("/v1/search", json={**SEARCH, "plate": "7ABC123"}).status_code == 200
    assert policy.store.cli("users", "disable", "ofc.lee") == 0
    assert client.post("/v1/search", json={**SEARCH, "plate": "7ABC123"}).status_code == 401
    assert policy.login("ofc.lee").status_code == 401


def test_training_gates_read_data_for_every_role(policy):
    insert_reads(policy.engine, [{"plate": "7ABC123"}])
    untrained = policy.user("ofc.new", "officer", trained=False)
    r = untrained.post("/v1/search", json={**SEARCH, "plate": "7ABC123"})
    assert r.status_code == 403 and "training" in r.json()["error"]
    assert untrained.get("/v1/alerts").status_code == 403
    auditor = policy.user("aud.new", "auditor", trained=False)
    assert auditor.get("/v1/audit").status_code == 403
    commander = policy.user("cmdr.new", "commander", trained=False)
    assert commander.post("/v1/search", json={**SEARCH, "plate": "7ABC123"}).status_code == 403

    # lapsed training counts as none, checked on each request (the session stays, the access does not)
    lapsed = policy.user("ofc.old", "officer")
    assert lapsed.post("/v1/search", json={**SEARCH, "plate": "7ABC123"}).status_code == 200
    with policy.engine.begin() as conn:
        conn.execute(training_records.update().values(expires_on=date(2020, 1, 1)))
    assert lapsed.post("/v1/search", json={**SEARCH, "plate": "7ABC123"}).status_code == 403
    assert [e["username"] for e in policy.audit_rows("search")] == ["ofc.old"]    # refused ones read nothing


def test_administrator_cannot_read_data_by_being_one(policy):
    insert_reads(policy.engine, [{"plate": "7ABC123"}])
    admin = policy.user("adm.kim", "admin")                    # trained, and still refused
    assert admin.post("/v1/search", json={**SEARCH, "plate": "7ABC123"}).status_code == 403
    rid = policy.store.read_ids()[0]
    assert admin.post(f"/v1/reads/{rid}/view", json=SEARCH).status_code == 403
    assert admin.get("/v1/alerts").status_code == 403
    assert admin.get("/v1/hotlist/entries").status_code == 403
    # but runs the system
    assert admin.get("/v1/users").status_code == 200
    assert admin.get("/v1/audit/verify").status_code == 200
    auditor = policy.user("aud.ray", "auditor")
    assert auditor.post("/v1/search", json={**SEARCH, "plate": "7ABC123"}).status_code == 403
    officer = policy.user("ofc.lee", "officer")
    assert officer.get("/v1/users").status_code == 403
    r = officer.post("/v1/users", json={"username": "evil", "full_name": "E", "job_title": "t", "agency": "a",
                                        "role": "admin", "password": PASSWORD})
    assert r.status_code == 403


def test_admin_manages_users_and_training_over_the_api(policy):
    admin = policy.user("adm.kim", "admin")
    r = admin.post("/v1/users", json={"username": "inv.diaz", "full_name": "Ana Diaz", "job_title": "Detective",
                                      "agency": "LAPP", "role": "officer", "password": PASSWORD})
    assert r.status_code == 201 and r.json()["job_title"] == "Detective"
    assert admin.post("/v1/users", json={"username": "inv.diaz", "full_name": "x", "job_title": "x", "agency": "x",
                                         "role": "officer", "password": PASSWORD}).status_code == 409
    diaz = Client(policy.url, policy.login("inv.diaz").json()["token"])
    assert diaz.get("/v1/auth/me").json()["training_current"] is False
    today = date.today()
    r = admin.post("/v1/users/inv.diaz/training", json={"course": "ALPR 101", "completed": str(today),
                                                        "expires": str(today + timedelta(days=365))})
    assert r.status_code == 201 and r.json()["records"][0]["current"] is True
    assert diaz.get("/v1/auth/me").json()["training_current"] is True
    bad = admin.post("/v1/users/inv.diaz/training", json={"course": "ALPR 101", "completed": str(today),
                                                          "expires": str(today - timedelta(days=1))})
    assert bad.status_code == 400


def test_users_and_training_cli(policy, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert policy.store.cli("users", "add", "sgt.park", "--name", "Jin Park", "--title", "Sergeant",
                            "--agency", "LAPP", "--role", "supervisor", "--password-stdin") == 0
    assert policy.store.cli("training", "record", "sgt.park", "--course", "ALPR 101", "--completed", "2026-01-05",
                            "--expires", "2099-01-05") == 0
    capsys.readouterr()
    assert policy.store.cli("users", "list", "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(u["username"], u["full_name"], u["job_title"], u["agency"], u["role"], u["status"]) for u in listed] == \
        [("sgt.park", "Jin Park", "Sergeant", "LAPP", "supervisor", "active")]
    assert policy.store.cli("training", "list", "sgt.park", "--json") == 0
    records = json.loads(capsys.readouterr().out)
    assert [(t["course"], t["completed"], t["expires"], t["current"]) for t in records] == \
        [("ALPR 101", "2026-01-05", "2099-01-05", True)]
    assert policy.login("sgt.park").status_code == 200
    assert policy.store.cli("users", "disable", "sgt.park") == 0
    assert policy.login("sgt.park").status_code == 401
    assert policy.store.cli("users", "disable", "nobody") == 1
    assert policy.store.cli("training", "record", "sgt.park", "--course", "x", "--completed", "2026-02-01",
                            "--expires", "2025-01-01") == 2
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert policy.store.cli("users", "add", "x.y", "--name", "X", "--title", "t", "--agency", "a", "--role",
                            "officer", "--password-stdin") == 2
    actions = [e["action"] for e in policy.audit_rows()]
    assert {"user_added", "training_recorded", "user_disabled"} <= set(actions)
