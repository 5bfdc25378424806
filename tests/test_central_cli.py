"""`alpr-central` commands and the migrations, on SQLite and PostgreSQL."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from central import cli, db, units
from central.schema import metadata
from unit.keys import ed25519_public_b64
from central_fixtures import REPO


def run_json(capsys, *argv: str):
    capsys.readouterr()
    assert cli.main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_migrated_database_matches_the_schema(store):
    assert db.current_revision(store.engine) == db.head_revision()
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_init_is_idempotent_and_keeps_keys(store, capsys):
    first = run_json(capsys, "init", "--home", str(store.home), "--db", store.url, "--json")
    assert first["keys_made"] is False                       # the fixture's init made them
    assert first["sealing_key_id"] == store.keys.sealing_key_id
    assert stat.S_IMODE(os.stat(store.home / "keys" / "sealing.pem").st_mode) == 0o600
    assert json.loads((store.home / "central.json").read_text())["db"] == store.url


def test_units_token_list_revoke(store, capsys):
    home = ["--home", str(store.home)]                       # the database comes from central.json
    tok = run_json(capsys, "units", "enroll-token", "--site", "gate-7", "--ttl-hours", "1", "--json", *home)
    assert tok["site"] == "gate-7" and len(tok["token"]) >= 40
    public = ed25519_public_b64(Ed25519PrivateKey.generate().public_key())
    assert units.enrol(store.engine, tok["token"], "unit-7", public) == "gate-7"
    listed = run_json(capsys, "units", "list", "--json", *home)
    assert [(u["unit_id"], u["site"], u["status"]) for u in listed] == [("unit-7", "gate-7", "active")]
    assert cli.main(["units", "revoke", "unit-7", *home]) == 0
    assert run_json(capsys, "units", "list", "--json", *home)[0]["status"] == "revoked"
    assert cli.main(["units", "revoke", "no-such-unit", *home]) == 1
    assert cli.main(["units", "enroll-token", "--site", "bad site!", *home]) == 2
    assert cli.main(["hotlist", "add", "not a plate", "--reason", "wanted", "--purpose", "wanted_vehicle",
                     "--case", "DR-1", *home]) == 2


def test_usage_errors_exit_2_and_help_exits_0(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    usage = subprocess.run([sys.executable, "-m", "central.cli", "units"], capture_output=True, text=True,
                           env=env, cwd=tmp_path)
    assert usage.returncode == 2 and "usage:" in usage.stderr
    helped = subprocess.run([sys.executable, "-m", "central.cli", "units", "enroll-token", "--help"],
                            capture_output=True, text=True, env=env, cwd=tmp_path)
    assert helped.returncode == 0 and "--site" in helped.stdout


def test_unreachable_database_exits_1(tmp_path, capsys):
    code = cli.main(["units", "list", "--home", str(tmp_path), "--db", "postgresql://postgres@127.0.0.1:1/none"])
    assert code == 1 and "OperationalError" in capsys.readouterr().err
