"""The audit log against an attacker who can write the database but does not hold the store's key
(issue 19, item 1): TRUNCATE refused, a serving database role that can only read and append the
log, and signed heads kept outside the database that `audit verify` checks the log against, naming
an emptied, cut, rewritten or forged-extension log. The attacks run past the triggers (on PostgreSQL
as the superuser with triggers disabled), as someone with full database access could."""
from __future__ import annotations

import base64
import json
import secrets

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from central import audit, checkpoints, db, db_roles
from central.api import create_app
from central.clock import parse_time
from central.config import Limits, resolve_serve_db
from central.keys import CentralKeys
from central.schema import audit_log
from central_fixtures import LiveServer
from policy_fixtures import FAST, PASSWORD, SEARCH, insert_reads, tamper


def _accesses(policy) -> None:
    insert_reads(policy.engine, [{"plate": "7ABC123"}, {"plate": "8XYZ999"}])
    officer = policy.user("ofc.lee", "officer")
    for plate in ("7ABC123", "8XYZ999"):
        assert officer.post("/v1/search", json={**SEARCH, "plate": plate}).status_code == 200


def _verify(policy, capsys) -> tuple[int, dict]:
    capsys.readouterr()
    code = policy.store.cli("audit", "verify", "--json")
    return code, json.loads(capsys.readouterr().out)


def _checkpoint(policy, capsys) -> dict:
    capsys.readouterr()
    assert policy.store.cli("audit", "checkpoint", "--json") == 0
    return json.loads(capsys.readouterr().out)


def _rehash_from(policy, first_id: int, **change) -> None:
    """Edit entry `first_id` and recompute the chain from it to the end, as a careful attacker would."""
    rows = sorted(policy.audit_rows(), key=lambda r: r["id"])
    prev = next((r["hash"] for r in rows if r["id"] == first_id - 1), audit.GENESIS)
    statements = []
    for row in rows:
        if row["id"] < first_id:
            continue
        entry = {**row, "at": parse_time(row["at"]), "prev_hash": prev}
        if row["id"] == first_id:
            entry.update(change)
        entry["hash"] = audit.entry_hash(prev, entry)
        sets = ", ".join(f"{k} = {v!r}" if isinstance(v, str) else f"{k} = {v}" for k, v in change.items()) \
            if row["id"] == first_id else ""
        statements.append(f"UPDATE audit_log SET {sets + ', ' if sets else ''}prev_hash = '{prev}', "
                          f"hash = '{entry['hash']}' WHERE id = {row['id']}")
        prev = entry["hash"]
    tamper(policy.engine, *statements)


def test_truncate_of_the_log_is_refused_on_postgresql(policy):
    if policy.store.backend != "postgresql":
        pytest.skip("SQLite has no TRUNCATE; its DELETE FROM is refused by a trigger (test_policy_audit)")
    _accesses(policy)
    with pytest.raises(sa.exc.DatabaseError, match="append-only"):
        with policy.engine.begin() as conn:
            conn.exec_driver_sql("TRUNCATE audit_log")
    assert len(policy.audit_rows()) > 0 and audit.verify(policy.engine).ok


def test_every_entry_carries_the_stores_signature(policy):
    _accesses(policy)
    public = policy.store.keys.signing.public_key()
    rows = policy.audit_rows()
    assert rows and all(audit.signature_ok(public, audit.entry_message(r["id"], r["hash"]), r["sig"]) for r in rows)


def test_intact_log_verifies_against_its_signed_head(policy, capsys):
    _accesses(policy)
    head = _checkpoint(policy, capsys)
    assert checkpoints.valid(head, policy.store.keys.signing.public_key())
    lines = (policy.store.home / "audit" / "checkpoints.jsonl").read_text().splitlines()
    assert [json.loads(x)["head_hash"] for x in lines] == [head["head_hash"]]
    code, out = _verify(policy, capsys)
    assert code == 0 and out["ok"] and out["signed_head"]["head_id"] == head["head_id"]
    _accesses_more(policy)                                   # entries after the head, signed: still intact
    code, out = _verify(policy, capsys)
    assert code == 0 and out["entries"] > head["entries"]


def _accesses_more(policy) -> None:
    r = policy.login("ofc.lee")
    assert r.status_code == 200


def test_emptied_log_is_named(policy, capsys):
    _accesses(policy)
    head = _checkpoint(policy, capsys)
    tamper(policy.engine, "TRUNCATE audit_log" if policy.store.backend == "postgresql" else "DELETE FROM audit_log")
    assert audit.verify(policy.engine).ok                   # the chain alone sees an intact, empty log ...
    code, out = _verify(policy, capsys)                      # ... the signed head does not
    assert code == 1 and out["problem"] == "emptied" and out["entries"] == 0
    assert f"{head['entries']} entries" in out["detail"]


def test_cut_tail_is_named(policy, capsys):
    _accesses(policy)
    head = _checkpoint(policy, capsys)
    tamper(policy.engine, f"DELETE FROM audit_log WHERE id >= {head['head_id'] - 2}")
    assert audit.verify(policy.engine).ok
    code, out = _verify(policy, capsys)
    assert code == 1 and out["problem"] == "cut" and out["bad_id"] == head["head_id"] - 2


def test_entry_edited_and_rehashed_is_named(policy, capsys):
    _accesses(policy)
    target = policy.audit_rows("search")[0]
    head = _checkpoint(policy, capsys)
    _rehash_from(policy, target["id"], result_count=0)
    assert audit.verify(policy.engine).ok                   # a consistent chain ...
    code, out = _verify(policy, capsys)                      # ... that no longer reaches the signed head
    assert code == 1 and out["problem"] == "rewritten" and out["bad_id"] == head["head_id"]
    assert policy.audit_rows("search")[0]["result_count"] == 0


@pytest.mark.parametrize("signature", ["none", "another key"])
def test_forged_entry_appended_is_named(policy, capsys, signature):
    _accesses(policy)
    _checkpoint(policy, capsys)
    last = policy.audit_rows()[-1]
    forged = {"id": last["id"] + 1, "at": parse_time(last["at"]), "username": "ofc.lee", "agency": last["agency"],
              "action": "search", "query": {"plate": "7ABC123"}, "purpose": "criminal_investigation",
              "case_number": "DR-2026-0042", "result_count": 0, "prev_hash": last["hash"]}
    forged["hash"] = audit.entry_hash(last["hash"], forged)
    sig = None
    if signature == "another key":
        other = Ed25519PrivateKey.generate()
        sig = base64.b64encode(other.sign(audit.entry_message(forged["id"], forged["hash"]))).decode()
    with policy.engine.begin() as conn:                      # INSERT needs no trigger disabled: it is allowed
        conn.execute(audit_log.insert().values(**forged, sig=sig))
    assert audit.verify(policy.engine).ok                   # the chain links up ...
    code, out = _verify(policy, capsys)                      # ... but the store never signed the entry
    assert code == 1 and out["problem"] == "forged" and out["bad_id"] == forged["id"]
    assert "ofc.lee" in out["detail"]


def test_forged_checkpoint_line_is_named(policy, capsys):
    _accesses(policy)
    _checkpoint(policy, capsys)
    other = CentralKeys(sealing=policy.store.keys.sealing, signing=Ed25519PrivateKey.generate())
    fake = checkpoints.sign(other, audit.Verdict(True, 1, 1, "0" * 64))
    checkpoints.append(policy.store.home / "audit" / "checkpoints.jsonl", fake)
    code, out = _verify(policy, capsys)
    assert code == 1 and out["problem"] == "forged_checkpoint" and "line 2" in out["detail"]


def test_every_report_carries_a_signed_head_and_a_broken_log_gets_none(policy, capsys):
    _accesses(policy)
    auditor = policy.user("aud.ray", "auditor")
    doc = auditor.get("/v1/audit/report", params={"from": "2020-01-01", "to": "2099-01-01"}).json()
    public = policy.store.keys.signing.public_key()
    assert doc["audit_chain"]["ok"] and checkpoints.valid(doc["signed_head"], public)
    kept = (policy.store.home / "audit" / "checkpoints.jsonl").read_text().splitlines()
    assert json.loads(kept[-1])["signature"] == doc["signed_head"]["signature"]     # and kept outside the database
    text = auditor.get("/v1/audit/report", params={"from": "2020-01-01", "to": "2099-01-01", "format": "text"}).text
    assert "Signed head:" in text and "signature " in text
    kept = (policy.store.home / "audit" / "checkpoints.jsonl").read_text().splitlines()
    assert len(kept) == 2
    assert auditor.get("/v1/audit/verify").json()["signed_head"]["head_id"] == json.loads(kept[-1])["head_id"]

    tamper(policy.engine, f"DELETE FROM audit_log WHERE id = {doc['signed_head']['head_id']}")
    doc = auditor.get("/v1/audit/report", params={"from": "2020-01-01", "to": "2099-01-01"}).json()
    assert not doc["audit_chain"]["ok"] and doc["signed_head"] is None
    assert len((policy.store.home / "audit" / "checkpoints.jsonl").read_text().splitlines()) == len(kept)
    assert auditor.get("/v1/audit/verify").json()["problem"] == "deleted"


# -- two database roles ---------------------------------------------------------------------------
@pytest.fixture
def serving(store, tmp_path):
    """A real second PostgreSQL role made by `alpr-central init --serve-url`; dropped afterwards."""
    if store.backend != "postgresql":
        pytest.skip("database roles are PostgreSQL's; SQLite has none")
    role = f"alpr_serve_{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(12)
    host_db = store.url.split("@", 1)[1]
    serve_url = f"postgresql://{role}:{password}@{host_db}"
    try:
        assert store.cli("init", "--serve-url", serve_url) == 0
        yield role, serve_url
    finally:
        with store.engine.begin() as conn:
            if conn.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).first():
                conn.exec_driver_sql(f'DROP OWNED BY "{role}"')
                conn.exec_driver_sql(f'DROP ROLE "{role}"')


def test_serving_role_may_read_and_append_the_log_and_nothing_else(policy, serving):
    role, serve_url = serving
    assert resolve_serve_db(policy.store.home, None) == serve_url            # what `serve` connects with
    assert db_roles.table_rights(policy.engine, role, "audit_log") == {"SELECT", "INSERT"}
    assert {"SELECT", "INSERT", "UPDATE", "DELETE"} <= db_roles.table_rights(policy.engine, role, "reads")
    _accesses(policy)
    engine = db.make_engine(serve_url)
    audit.sign_with(engine, policy.store.keys)               # as the serving app does
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT current_user")).scalar_one() == role
        with engine.begin() as conn:
            audit.append(conn, audit.system("serving-test"), "login", {"client": "test"})
        for statement, refusal in (("UPDATE audit_log SET result_count = 0", "permission denied"),
                                   ("DELETE FROM audit_log", "permission denied"),
                                   ("TRUNCATE audit_log", "permission denied"),
                                   ("ALTER TABLE audit_log DISABLE TRIGGER USER", "must be owner"),
                                   ("ALTER TABLE audit_log ADD COLUMN x int", "must be owner"),
                                   ("DROP TRIGGER audit_log_append_only ON audit_log", "must be owner"),
                                   ("SET session_replication_role = replica", "permission denied")):
            with pytest.raises(sa.exc.DatabaseError, match=refusal):
                with engine.begin() as conn:
                    conn.exec_driver_sql(statement)
        # the whole API works as the serving role: login, search, audit report
        server = LiveServer(create_app(engine, policy.store.keys, Limits(), FAST))
        try:
            import requests
            token = requests.post(server.url + "/v1/auth/login", json={"username": "ofc.lee", "password": PASSWORD},
                                  timeout=30).json()["token"]
            r = requests.post(server.url + "/v1/search", json={**SEARCH, "plate": "7ABC123"},
                              headers={"Authorization": f"Bearer {token}"}, timeout=30)
            assert r.status_code == 200 and r.json()["count"] == 1
        finally:
            server.stop()
    finally:
        audit.sign_with(engine, None)
        engine.dispose()
    assert audit.verify(policy.engine, public_key=policy.store.keys.signing.public_key()).ok
    assert policy.audit_rows("search")[-1]["username"] == "ofc.lee"


def test_serve_url_refuses_sqlite_and_the_owner_itself(store, capsys):
    if store.backend == "sqlite":
        assert store.cli("init", "--serve-url", "postgresql://x:y@127.0.0.1/db") == 2
    else:
        owner = store.url.split("//", 1)[1].split("@", 1)[0]
        assert store.cli("init", "--serve-url", store.url.replace(f"//{owner}@", f"//{owner}:pw@")) == 2
    assert "--serve-url" in capsys.readouterr().err
