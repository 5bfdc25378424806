"""The command line acts for a person only with that person's password (issue 19, item 13): an
evidence export `--by sup1` without proof used to write "Exported by: sup1" into the chain of
custody. Without `--by`, a command is recorded as the operating-system account, marked as the
command line (SQLite and PostgreSQL)."""
from __future__ import annotations

import getpass

from central import training
from policy_fixtures import PASSWORD, insert_reads


def _held(policy) -> int:
    ids = insert_reads(policy.engine, [{"plate": "7ABC123"}])
    officer = policy.user("inv.diaz", "officer")
    hold = officer.post("/v1/holds", json={"case_number": "DR-1", "reason": "evidence", "read_ids": ids})
    assert hold.status_code == 201
    policy.add_user("sgt.park", "supervisor")
    return hold.json()["id"]


def test_evidence_export_by_a_person_needs_their_password(policy, tmp_path, monkeypatch, capsys):
    hold = _held(policy)
    out = tmp_path / "usb"
    monkeypatch.delenv("ALPR_CENTRAL_PASSWORD", raising=False)
    assert policy.store.cli("evidence", "export", str(hold), str(out), "--by", "sgt.park") == 2   # no proof
    assert "password" in capsys.readouterr().err and not out.exists()
    monkeypatch.setenv("ALPR_CENTRAL_PASSWORD", "not the password")
    assert policy.store.cli("evidence", "export", str(hold), str(out), "--by", "sgt.park") == 1   # wrong proof
    assert not out.exists() and policy.audit_rows("export") == []
    failed = policy.audit_rows("login_failed")[-1]
    assert (failed["username"], failed["query"]["reason"], failed["query"]["client"]) == \
        ("sgt.park", "wrong password", f"cli:{getpass.getuser()}")
    monkeypatch.setenv("ALPR_CENTRAL_PASSWORD", PASSWORD)
    assert policy.store.cli("evidence", "export", str(hold), str(out), "--by", "sgt.park") == 0
    assert "sgt.park" in (out / "chain-of-custody.txt").read_text()
    assert policy.audit_rows("export")[0]["username"] == "sgt.park"


def test_without_by_the_os_account_is_recorded_marked_as_cli(policy, monkeypatch):
    policy.add_user("ofc.new", "officer", trained=False)
    monkeypatch.delenv("ALPR_CENTRAL_PASSWORD", raising=False)
    assert policy.store.cli("training", "record", "ofc.new", "--course", "ALPR 101", "--completed", "2026-01-05",
                            "--expires", "2099-01-05") == 0
    entry = policy.audit_rows("training_recorded")[-1]
    assert (entry["username"], entry["agency"]) == (f"cli:{getpass.getuser()}", "ALPR central store")
    assert training.list_records(policy.engine, "ofc.new")[0]["recorded_by"] == f"cli:{getpass.getuser()}"


def test_by_another_user_without_proof_or_role_is_refused(policy, monkeypatch):
    policy.add_user("adm.kim", "admin")
    policy.add_user("ofc.lee", "officer")
    policy.add_user("ofc.new", "officer", trained=False)
    record = ("training", "record", "ofc.new", "--course", "ALPR 101", "--completed", "2026-01-05",
              "--expires", "2099-01-05")
    monkeypatch.setenv("ALPR_CENTRAL_PASSWORD", "guess")
    assert policy.store.cli(*record, "--by", "adm.kim") == 1                   # cannot claim to be the admin
    monkeypatch.setenv("ALPR_CENTRAL_PASSWORD", PASSWORD)
    assert policy.store.cli(*record, "--by", "ofc.lee") == 1                   # a proven officer may not
    assert training.list_records(policy.engine, "ofc.new") == []
    refusal = policy.audit_rows("refused")[-1]
    assert (refusal["username"], refusal["query"]["permission"], refusal["query"]["command"]) == \
        ("ofc.lee", "users.manage", "alpr-central training record")
    assert PASSWORD not in str(policy.audit_rows())                             # no secret in the log
    assert policy.store.cli(*record, "--by", "adm.kim") == 0
    assert training.list_records(policy.engine, "ofc.new")[0]["recorded_by"] == "adm.kim"
