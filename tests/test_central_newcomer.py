"""What a newcomer meets first on the central store: commands on a home never initialised, a token
captured by a shell, refusals that read as English, a purpose outside the policy's list named as such,
and evidence bundles only their owner can read. Real processes, real SQLite and PostgreSQL."""
from __future__ import annotations

import os
import secrets
import stat
import subprocess
import sys

import pytest
import sqlalchemy as sa

from central import db, evidence, holds
from central.access import ACTIONS
from central.roles import PERMISSIONS

pytest.register_assert_rewrite("central_fixtures", "policy_fixtures")
from central_fixtures import PG_ADMIN_URL, REPO  # noqa: E402
from policy_fixtures import SEARCH, TEST_ADMIN, insert_reads  # noqa: E402

pytest_plugins = ["central_fixtures", "policy_fixtures"]


def central(*argv: str, stdout=subprocess.PIPE) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "central.cli", *argv], cwd=REPO, stdout=stdout,
                          stderr=subprocess.PIPE, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO), "ALPR_CENTRAL_HOME": "", "ALPR_CENTRAL_DB": ""})


@pytest.fixture
def empty_pg():
    """A PostgreSQL database that exists but was never initialised."""
    admin = sa.create_engine(db.normalise_url(PG_ADMIN_URL), isolation_level="AUTOCOMMIT")
    name = f"alpr_empty_{secrets.token_hex(4)}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.mark.parametrize("argv", [["serve", "--port", "1"], ["units", "list"], ["users", "list"]])
def test_a_home_never_initialised_says_to_run_init(tmp_path, argv):
    home = tmp_path / "never"
    done = central(*argv, "--home", str(home))
    assert done.returncode == 1
    assert done.stderr.startswith("alpr-central: ") and f"run alpr-central init --home {home}" in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert not (home / "central.db").exists()                 # no empty database left behind


def test_a_postgresql_database_never_initialised_says_to_run_init(tmp_path, empty_pg):
    home = tmp_path / "pg-home"
    done = central("units", "list", "--home", str(home), "--db", empty_pg)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "holds no central store" in done.stderr and f"run alpr-central init --home {home} --db {empty_pg}" in done.stderr


def test_enroll_token_prints_the_token_alone_and_survives_a_closed_pipe(store):
    argv = ("units", "enroll-token", "--site", "gate-1", "--home", str(store.home), "--db", store.url)
    done = central(*argv)
    assert done.returncode == 0
    lines = done.stdout.splitlines()
    assert len(lines) == 1 and len(lines[0]) >= 20 and " " not in lines[0]      # TOKEN=$(...) gets the token
    assert "site gate-1" in done.stderr

    read, write = os.pipe()
    os.close(read)                                            # the reader is gone before anything is written
    try:
        closed = central(*argv, "--json", stdout=write)
    finally:
        os.close(write)
    assert closed.returncode == 0
    assert "Traceback" not in closed.stderr and "BrokenPipe" not in closed.stderr, closed.stderr


def test_refusals_name_the_action_in_words(policy):
    assert set(ACTIONS) == set(PERMISSIONS)
    admin = policy.user("adm.kim", "admin")
    r = admin.post("/v1/alerts/1/verification", json={"outcome": "confirmed", "note": "CLETS: stolen"})
    assert (r.status_code, r.json()) == (403, {"error": "refused: the admin role may not verify alerts"})
    r = admin.post("/v1/search", json={**SEARCH, "plate": "7ABC123"})
    assert r.json()["error"] == "refused: the admin role may not search reads or view them"


def test_a_purpose_outside_the_policy_is_named_as_such(policy):
    officer = policy.user("ofc.lee", "officer")
    r = officer.post("/v1/search", json={**SEARCH, "purpose": "curiosity", "plate": "7ABC123"})
    assert r.status_code == 400
    assert r.json()["error"].startswith("purpose 'curiosity' is not in the policy's list: one of stolen_vehicle, ")
    r = officer.post("/v1/search", json={**SEARCH, "purpose": "", "plate": "7ABC123"})
    assert r.status_code == 400 and r.json()["error"].startswith("purpose: required, one of ")


def test_an_evidence_bundle_is_readable_by_its_owner_only(policy, tmp_path):
    ids = insert_reads(policy.engine, [{"plate": "7ABC123", "context": True}, {"plate": "7ABC124"}])
    hold = holds.place(policy.engine, TEST_ADMIN, "DR-2026-7", "homicide", read_ids=ids)
    old = os.umask(0o022)                                      # a usual umask: files 0644 unless asked
    try:
        out = tmp_path / "usb" / "DR-2026-7"
        evidence.export(policy.engine, policy.store.keys, TEST_ADMIN, hold["id"], out)
    finally:
        os.umask(old)
    paths = [out, *out.rglob("*")]
    assert len([p for p in paths if p.is_file()]) >= 6
    modes = {str(p.relative_to(out.parent)): stat.S_IMODE(p.stat().st_mode) for p in paths}
    assert all(mode == (0o700 if (out.parent / name).is_dir() else 0o600) for name, mode in modes.items()), modes
