"""Fixtures for the policy-462 tests (tests/test_policy_*.py): a live central store with users.

Builds on central_fixtures (SQLite and PostgreSQL, a real uvicorn on loopback). Argon2 runs with
cheap costs here so that dozens of logins stay fast; the algorithm and code path are the real ones.
Reads for search, retention and holds are written straight into the tables (ingest has its own
tests); alerts are raised through the real signed ingest.
"""
from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from central import audit, training, users
from central.api import create_app
from central.config import Limits, Settings, save_settings
from central.schema import read_images, reads, units
from central_fixtures import JPEG, FaultyApp, LiveServer, Store
from hil.loopback import session_from

FAST = Settings(argon2_time_cost=1, argon2_memory_kib=1024, argon2_parallelism=1)
PASSWORD = "correct horse battery"
AGENCY = "Los Angeles Port Police"
TEST_ADMIN = audit.system("test-setup")


class Client:
    """requests with a bearer session; raises nothing, returns the Response."""

    def __init__(self, url: str, token: str | None = None):
        self.url = url
        self.http = requests.Session()
        if token:
            self.http.headers["Authorization"] = f"Bearer {token}"

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.http.get(self.url + path, timeout=30, **kw)

    def post(self, path: str, **kw: Any) -> requests.Response:
        return self.http.post(self.url + path, timeout=30, **kw)

    def put(self, path: str, **kw: Any) -> requests.Response:
        return self.http.put(self.url + path, timeout=30, **kw)

    def delete(self, path: str, **kw: Any) -> requests.Response:
        return self.http.delete(self.url + path, timeout=30, **kw)


@dataclass
class Policy:
    store: Store
    server: LiveServer
    settings: Settings

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def engine(self) -> sa.Engine:
        return self.store.engine

    def add_user(self, username: str, role: str, *, trained: bool = True, agency: str = AGENCY,
                 password: str = PASSWORD) -> None:
        users.add(self.engine, self.settings, username=username, full_name=username.title(), job_title=f"{role} title",
                  agency=agency, role=role, password=password, by=TEST_ADMIN)
        if trained:
            today = date.today()
            training.record(self.engine, username, "ALPR operator course", today - timedelta(days=30),
                            today + timedelta(days=335), TEST_ADMIN)

    def login(self, username: str, password: str = PASSWORD, address: str = "127.0.0.1") -> requests.Response:
        """Log in over HTTP from `address` (any 127.x.y.z: the server sees a different client host)."""
        with session_from(address) as http:
            return http.post(self.url + "/v1/auth/login", json={"username": username, "password": password},
                             timeout=30)

    def user(self, username: str, role: str, **kw: Any) -> Client:
        """Add a user (trained unless trained=False), log in, return a client with the session."""
        self.add_user(username, role, **kw)
        r = self.login(username, kw.get("password", PASSWORD))
        assert r.status_code == 200, r.text
        return Client(self.url, r.json()["token"])

    def anonymous(self) -> Client:
        return Client(self.url)

    def audit_rows(self, action: str | None = None) -> list[dict[str, Any]]:
        return audit.entries(self.engine, action=action, limit=100000)


@pytest.fixture
def policy(store: Store) -> Policy:
    save_settings(store.home, FAST)                    # the CLI, in the same home, hashes cheaply too
    serving = dataclasses.replace(FAST, audit_dir=str(store.home / "audit"))   # as `serve` sets it
    server = LiveServer(FaultyApp(create_app(store.engine, store.keys, Limits(), serving)))
    yield Policy(store, server, FAST)
    server.stop()


def ensure_unit(engine: sa.Engine, unit_id: str = "unit-1", site: str = "gate-1") -> None:
    with engine.begin() as conn:
        if not conn.execute(sa.select(units.c.unit_id).where(units.c.unit_id == unit_id)).first():
            conn.execute(units.insert().values(unit_id=unit_id, site=site, public_key="-", status="active",
                                               enrolled_at=datetime.now(timezone.utc)))


def insert_reads(engine: sa.Engine, specs: list[dict[str, Any]]) -> list[str]:
    """Insert reads (plate, captured_at, optional received_at/site/lane/direction) with a crop each;
    returns ids."""
    now = datetime.now(timezone.utc)
    rows, images = [], []
    for spec in specs:
        site = spec.get("site", "gate-1")
        unit_id = f"unit-{site}"
        ensure_unit(engine, unit_id, site)
        rid = spec.get("read_id") or str(uuid.uuid4())
        rows.append({"read_id": rid, "unit_id": unit_id, "site": site, "lane": spec.get("lane", "1"),
                     "direction": spec.get("direction", "in"), "captured_at": spec.get("captured_at", now),
                     "plate": spec["plate"], "region": "us-ca", "confidence": 0.9,
                     "candidates": [{"plate": spec["plate"], "score": 0.9}], "box": [1, 2, 3, 4],
                     "model": {"detector": "d", "reader": "r"}, "trigger": {"sensor": "loop-1"},
                     "schema_version": 1,
                     # received when captured unless the spec says otherwise (a unit with a wrong clock)
                     "received_at": spec.get("received_at", min(spec.get("captured_at", now), now))})
        images.append({"read_id": rid, "kind": "crop", "jpeg": JPEG})
        if spec.get("context"):
            images.append({"read_id": rid, "kind": "context", "jpeg": JPEG})
    with engine.begin() as conn:
        conn.execute(reads.insert(), rows)
        conn.execute(read_images.insert(), images)
    return [r["read_id"] for r in rows]


def tamper(engine: sa.Engine, *statements: str) -> None:
    """Run SQL past the audit log's append-only triggers, as someone with full database access could."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SET LOCAL session_replication_role = replica")    # triggers do not fire
        else:
            conn.exec_driver_sql("DROP TRIGGER IF EXISTS audit_log_no_update")
            conn.exec_driver_sql("DROP TRIGGER IF EXISTS audit_log_no_delete")
        for statement in statements:
            conn.exec_driver_sql(statement)


SEARCH = {"purpose": "criminal_investigation", "case_number": "DR-2026-0042"}
