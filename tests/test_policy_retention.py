"""Retention and evidence (policy 462.4): purge past the retention period except legal holds, each
run logged with counts; holds placed and released with case and who; evidence bundles whose every
change is detected (SQLite and PostgreSQL)."""
from __future__ import annotations

import base64
import io
import json
import shutil
import zipfile
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from central import evidence, retention
from central.clock import years_before
from central.config import Settings
from central.schema import alerts, legal_hold_reads, read_images, reads
from central_fixtures import JPEG
from policy_fixtures import PASSWORD, TEST_ADMIN, insert_reads

NOW = datetime.now(timezone.utc)
OLD = years_before(NOW, 5) - timedelta(days=1)              # just past the default 5 years
RECENT = years_before(NOW, 5) + timedelta(days=1)           # just inside it


def _setup(policy):
    old = insert_reads(policy.engine, [{"plate": f"7OLD{i:03d}", "captured_at": OLD - timedelta(hours=i),
                                        "context": i == 0} for i in range(6)])
    recent = insert_reads(policy.engine, [{"plate": "7NEW001", "captured_at": RECENT}, {"plate": "7NEW002"}])
    with policy.engine.begin() as conn:          # an alert on an old read goes with it
        conn.execute(alerts.insert().values(read_id=old[1], pattern="7OLD001", category="wanted", plate="7OLD001",
                                            site="gate-1", captured_at=OLD, raised_at=OLD, status="unverified"))
    return old, recent


def test_default_retention_is_the_policys_five_years_and_cannot_go_below():
    assert Settings().retention_years == 5
    with pytest.raises(ValueError, match="462.4"):
        Settings(retention_years=4)
    assert retention.cutoff_for(Settings(), datetime(2028, 2, 29, tzinfo=timezone.utc)) == \
        datetime(2023, 2, 28, tzinfo=timezone.utc)


def test_purge_keeps_held_and_recent_reads_and_logs_counts(policy):
    old, recent = _setup(policy)
    officer = policy.user("inv.diaz", "officer")
    held = officer.post("/v1/holds", json={"case_number": "DR-2020-7", "reason": "homicide evidence",
                                           "read_ids": old[:2]})
    assert held.status_code == 201 and held.json()["read_count"] == 2 and held.json()["placed_by"] == "inv.diaz"
    released = officer.post("/v1/holds", json={"case_number": "DR-2019-1", "reason": "closed case",
                                               "read_ids": [old[2]]}).json()
    sgt = policy.user("sgt.park", "supervisor")
    assert officer.post(f"/v1/holds/{released['id']}/release", json={"reason": "x"}).status_code == 403
    r = sgt.post(f"/v1/holds/{released['id']}/release", json={"reason": "case closed, DA declined"})
    assert r.status_code == 200 and r.json()["released_by"] == "sgt.park" and not r.json()["active"]
    assert sgt.post(f"/v1/holds/{released['id']}/release", json={"reason": "again"}).status_code == 409

    assert policy.store.cli("retention", "run", "--dry-run") == 0
    assert policy.store.count() == 8                                   # a dry run changes nothing
    admin = policy.user("adm.kim", "admin")
    assert officer.post("/v1/retention/run", json={}).status_code == 403
    run = admin.post("/v1/retention/run", json={}).json()
    assert (run["status"], run["reads_purged"], run["images_purged"], run["alerts_purged"], run["held_kept"]) == \
        ("done", 4, 4, 0, 2)
    left = set(policy.store.read_ids())
    assert left == set(old[:2]) | set(recent)                          # held and recent survive; released went
    assert policy.store.count("read_images") == 5 and policy.store.count("alerts") == 1   # the held read keeps its alert
    logged = policy.audit_rows("retention_run")[0]
    assert (logged["username"], logged["result_count"], logged["query"]["held_kept"]) == ("adm.kim", 4, 2)
    assert admin.get("/v1/retention/runs").json()[0]["id"] == run["id"]

    # released later, the held reads go at the next run
    assert sgt.post(f"/v1/holds/{held.json()['id']}/release", json={"reason": "trial over"}).status_code == 200
    assert policy.store.cli("retention", "run") == 0
    assert set(policy.store.read_ids()) == set(recent)
    assert policy.store.count("alerts") == 0
    assert len(policy.audit_rows("retention_run")) == 2


def test_database_refuses_to_delete_a_held_read(policy):
    old, _ = _setup(policy)
    officer = policy.user("inv.diaz", "officer")
    assert officer.post("/v1/holds", json={"case_number": "DR-1", "reason": "r", "read_ids": [old[0]]}).status_code == 201
    with pytest.raises(sa.exc.IntegrityError):
        with policy.engine.begin() as conn:
            conn.execute(read_images.delete().where(read_images.c.read_id == old[0]))
            conn.execute(reads.delete().where(reads.c.read_id == old[0]))
    assert old[0] in policy.store.read_ids()


def test_holds_by_filter_and_refusals(policy, monkeypatch):
    monkeypatch.setenv("ALPR_CENTRAL_PASSWORD", PASSWORD)           # --by proves the person (test_cli_identity)
    old, _ = _setup(policy)
    officer = policy.user("inv.diaz", "officer")
    window = {"from": (OLD - timedelta(days=30)).date().isoformat(), "to": NOW.date().isoformat()}
    r = officer.post("/v1/holds", json={"case_number": "DR-5", "reason": "pattern",
                                        "filter": {"plate": "7OLD00?", **window}})
    assert r.status_code == 201 and r.json()["read_count"] == 6
    for body in ({"case_number": "", "reason": "r", "read_ids": [old[0]]},
                 {"case_number": "DR-5", "reason": "", "read_ids": [old[0]]},
                 {"case_number": "DR-5", "reason": "r", "read_ids": ["no-such-read"]},
                 {"case_number": "DR-5", "reason": "r"},
                 {"case_number": "DR-5", "reason": "r", "filter": {}},
                 {"case_number": "DR-5", "reason": "r", "filter": {"plate": "7OLD00?"}},      # no time window
                 {"case_number": "DR-5", "reason": "r", "filter": {"from": "1970-01-01"}}):   # no plate
        assert officer.post("/v1/holds", json=body).status_code == 400, body
    assert policy.user("aud.ray", "auditor").post("/v1/holds", json={"case_number": "DR-5", "reason": "r",
                                                                     "read_ids": [old[0]]}).status_code == 403
    assert policy.store.cli("holds", "place", "--case", "DR-6", "--reason", "r", "--read-id", old[0]) == 2   # no --by
    assert policy.store.cli("holds", "place", "--case", "DR-6", "--reason", "r", "--read-id", old[0],
                            "--by", "aud.ray") == 1                                                     # role
    assert policy.store.cli("holds", "place", "--case", "DR-6", "--reason", "r", "--read-id", old[0],
                            "--by", "inv.diaz") == 0
    placed = [e for e in policy.audit_rows("hold_placed")]
    assert [(e["username"], e["case_number"], e["result_count"]) for e in placed] == \
        [("inv.diaz", "DR-5", 6), ("inv.diaz", "DR-6", 1)]


def test_evidence_bundle_is_signed_hashed_and_every_change_detected(policy, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ALPR_CENTRAL_PASSWORD", PASSWORD)
    old, _ = _setup(policy)
    officer = policy.user("inv.diaz", "officer")
    hold = officer.post("/v1/holds", json={"case_number": "DR-2020-7", "reason": "homicide",
                                           "read_ids": old[:2]}).json()
    policy.add_user("sgt.park", "supervisor")
    policy.add_user("adm.kim", "admin")
    out = tmp_path / "usb" / "DR-2020-7"
    assert policy.store.cli("evidence", "export", str(hold["id"]), str(out), "--by", "adm.kim") == 1  # admin: no data
    assert policy.store.cli("evidence", "export", str(hold["id"]), str(out), "--by", "inv.diaz") == 1  # officer
    assert policy.store.cli("evidence", "export", str(hold["id"]), str(out), "--by", "sgt.park") == 0
    lines = [json.loads(x) for x in (out / "reads.jsonl").read_text().splitlines()]
    assert sorted(x["read_id"] for x in lines) == sorted(old[:2])
    assert (out / "images" / f"{old[0]}-context.jpg").read_bytes() == JPEG
    custody = json.loads((out / "custody.json").read_text())
    assert (custody["case_number"], custody["exported_by"]["username"], custody["read_count"]) == \
        ("DR-2020-7", "sgt.park", 2)
    assert "CHAIN OF CUSTODY" in (out / "chain-of-custody.txt").read_text()
    manifest = json.loads((out / "manifest.json").read_text())
    assert {f["path"] for f in manifest["files"]} >= {"reads.jsonl", "custody.json", f"images/{old[1]}-crop.jpg"}
    export_log = policy.audit_rows("export")[0]
    assert (export_log["username"], export_log["case_number"], export_log["purpose"], export_log["result_count"]) == \
        ("sgt.park", "DR-2020-7", "evidence", 2)
    capsys.readouterr()
    assert policy.store.cli("evidence", "verify", str(out)) == 0
    assert policy.store.cli("evidence", "export", str(hold["id"]), str(out), "--by", "sgt.park") == 2  # not empty

    key = policy.store.keys.signing.public_key()
    def broken_after(change) -> list[str]:
        copy = tmp_path / f"copy-{len(list(tmp_path.iterdir()))}"
        shutil.copytree(out, copy)
        change(copy)
        return evidence.verify(copy, key)["problems"]
    assert "changed" in broken_after(lambda d: (d / "reads.jsonl").write_text(
        (d / "reads.jsonl").read_text().replace("7OLD000", "7OLD999")))[0]
    assert "missing" in broken_after(lambda d: (d / "images" / f"{old[0]}-crop.jpg").unlink())[0]
    assert "added" in broken_after(lambda d: (d / "images" / "extra.jpg").write_bytes(JPEG))[0]
    assert "signature" in broken_after(lambda d: (d / "manifest.json").write_text(
        (d / "manifest.json").read_text().replace("DR-2020-7", "DR-2020-8")))[0]
    # re-hash a changed file into the manifest: the signature no longer matches
    def rehash(d):
        (d / "custody.json").write_text("{}")
        m = json.loads((d / "manifest.json").read_text())
        for f in m["files"]:
            if f["path"] == "custody.json":
                f["sha256"] = evidence._sha256(d / "custody.json")
                f["bytes"] = 2
        (d / "manifest.json").write_text(json.dumps(m, indent=2, sort_keys=True) + "\n")
    assert any("signature" in p for p in broken_after(rehash))
    other_key = base64.b64encode(b"\x01" * 32).decode()
    capsys.readouterr()
    assert policy.store.cli("evidence", "verify", str(out), "--public-key", other_key) == 1


def test_evidence_over_the_api_as_zip_and_only_for_active_holds(policy, tmp_path):
    old, _ = _setup(policy)
    sgt = policy.user("sgt.park", "supervisor")
    hold = sgt.post("/v1/holds", json={"case_number": "DR-3", "reason": "r", "read_ids": [old[0]]}).json()
    r = sgt.post(f"/v1/holds/{hold['id']}/evidence")
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    zipfile.ZipFile(io.BytesIO(r.content)).extractall(tmp_path / "unzipped")
    folder = tmp_path / "unzipped" / f"evidence-hold-{hold['id']}"
    assert evidence.verify(folder, policy.store.keys.signing.public_key())["ok"]
    assert policy.user("ofc.lee", "officer").post(f"/v1/holds/{hold['id']}/evidence").status_code == 403
    assert sgt.post(f"/v1/holds/{hold['id']}/release", json={"reason": "done"}).status_code == 200
    assert sgt.post(f"/v1/holds/{hold['id']}/evidence").status_code == 409


def test_retention_failure_is_recorded(policy, monkeypatch):
    _setup(policy)
    def boom(*_a, **_k):
        raise RuntimeError("disk on fire")
    monkeypatch.setattr(retention, "_purge_batch", boom)
    with pytest.raises(RuntimeError):
        retention.run(policy.engine, policy.settings, TEST_ADMIN)
    run = retention.list_runs(policy.engine)[0]
    assert run["status"] == "failed" and "disk on fire" in run["error"]
    assert policy.audit_rows("retention_run")[0]["query"]["status"] == "failed"
    with policy.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(legal_hold_reads)).scalar_one() == 0
