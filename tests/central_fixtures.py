"""Fixtures and helpers for the central-store and uplink tests: real servers, real databases.

Loaded for the whole suite by tests/conftest.py (`pytest_plugins`), so the
PostgreSQL database is made once per session. Storage is parametrised over SQLite (a file per test)
and PostgreSQL (one throwaway database per session, emptied between tests). PostgreSQL is required:
if it cannot be reached the postgresql cases FAIL with a message saying so; CI must provide it.
"""
from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa
import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from PIL import Image

from central import cli, db, units
from central.api import create_app
from central.config import Limits
from central.keys import CentralKeys, load_keys
from central.schema import metadata
from unit.identity import enroll
from wire import batch, seal
from wire.read import Read
from wire.times import utc_ms

REPO = Path(__file__).resolve().parents[1]
PG_ADMIN_URL = os.environ.get("ALPR_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
BACKENDS = ["sqlite", "postgresql"]


def _jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (48, 16), (200, 200, 40)).save(out, "JPEG", quality=70)
    return out.getvalue()


JPEG = _jpeg()


# -- databases --------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def pg_url(tmp_path_factory) -> str:
    """A throwaway PostgreSQL database for this session, migrated by `alpr-central init`, then dropped."""
    admin = sa.create_engine(db.normalise_url(PG_ADMIN_URL), isolation_level="AUTOCOMMIT")
    name = f"alpr_test_{secrets.token_hex(4)}"
    problem = None
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as exc:
        problem = str(exc).splitlines()[0]
    if problem:
        admin.dispose()
        pytest.fail(f"PostgreSQL is required for these tests and is not reachable at {PG_ADMIN_URL} "
                    f"(set ALPR_TEST_PG to override): {problem}", pytrace=False)
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    home = tmp_path_factory.mktemp("pg-home")
    assert cli.main(["init", "--home", str(home), "--db", url]) == 0
    yield url
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@dataclass
class Store:
    backend: str
    url: str
    home: Path
    engine: sa.Engine
    keys: CentralKeys

    def count(self, table: str = "reads") -> int:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(metadata.tables[table])).scalar_one()

    def read_ids(self) -> list[str]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.text("SELECT read_id FROM reads")).scalars())

    def cli(self, *argv: str) -> int:
        return cli.main([*argv, "--home", str(self.home), "--db", self.url])


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path) -> Store:
    """An initialised central home (keys + migrated, empty database) on each back end."""
    home = tmp_path / "central"
    if request.param == "sqlite":
        url = db.sqlite_url(tmp_path / "central.db")
    else:
        url = request.getfixturevalue("pg_url")
    assert cli.main(["init", "--home", str(home), "--db", url]) == 0
    engine = db.make_engine(url)
    if request.param == "postgresql":
        with engine.begin() as conn:
            tables = ", ".join(t.name for t in metadata.sorted_tables)
            conn.exec_driver_sql("SET LOCAL session_replication_role = replica")   # past audit_log's no-truncate trigger
            conn.exec_driver_sql(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
    yield Store(request.param, url, home, engine, load_keys(home / "keys"))
    engine.dispose()


# -- a real server on loopback, with faults on demand --------------------------------------------------
@dataclass
class Fault:
    """`before`: answer `status` without calling the app; `after`: let the app work, then answer
    `status` instead; `delay`: let the app work, then hold the answer `seconds`. In a plan, None
    stands for a request left alone."""
    kind: str
    status: int = 500
    seconds: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


class FaultyApp:
    """ASGI wrapper in front of the real app: injects faults into /v1/reads and logs every answer."""

    def __init__(self, app):
        self.app = app
        self.plan: deque[Fault | None] = deque()
        self.log: list[tuple[float, int]] = []          # (arrival time, status answered) per /v1/reads request

    async def _answer(self, send, status: int, headers: dict[str, str]) -> None:
        raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), *raw]})
        await send({"type": "http.response.body", "body": b'{"error":"injected fault"}'})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] != "/v1/reads":
            return await self.app(scope, receive, send)
        arrived = time.monotonic()
        fault = self.plan.popleft() if self.plan else None
        if fault is not None and fault.kind == "before":
            self._log(arrived, fault.status)
            return await self._answer(send, fault.status, fault.headers)
        held: list[dict] = []

        async def hold(message):
            held.append(message)
        await self.app(scope, receive, hold)
        if fault is not None and fault.kind == "after":
            self._log(arrived, fault.status)
            return await self._answer(send, fault.status, fault.headers)
        if fault is not None:
            await asyncio.sleep(fault.seconds)            # "delay": the real answer, too late
        self._log(arrived, held[0]["status"])
        for message in held:
            await send(message)

    def _log(self, arrived: float, status: int) -> None:
        self.log.append((arrived, status))
        self.log.sort()                                   # by arrival, whatever order the answers left in


class LiveServer:
    """uvicorn serving `app` on 127.0.0.1 in a thread of the test process."""

    def __init__(self, app):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                                timeout_graceful_shutdown=1)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


@dataclass
class Central:
    store: Store
    app: FaultyApp
    server: LiveServer

    @property
    def url(self) -> str:
        return self.server.url


def start_central(store: Store, limits: Limits = Limits()) -> Central:
    app = FaultyApp(create_app(store.engine, store.keys, limits))
    return Central(store, app, LiveServer(app))


@pytest.fixture
def central(store) -> Central:
    c = start_central(store)
    yield c
    c.server.stop()


class ServeProcess:
    """`alpr-central serve` as a real child process, so a test can SIGKILL it and start it again."""

    def __init__(self, store: Store, port: int, *extra: str):
        self.args = [sys.executable, "-m", "central.cli", "serve", "--home", str(store.home), "--db", store.url,
                     "--port", str(port), "--log-level", "warning", *extra]
        self.url = f"http://127.0.0.1:{port}"
        # own process group: kill() takes uvicorn's worker processes down with it
        self.proc = subprocess.Popen(self.args, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                                     start_new_session=True)
        deadline = time.monotonic() + 30
        while True:
            assert self.proc.poll() is None, f"alpr-central serve exited with {self.proc.returncode}"
            try:
                if requests.get(self.url + "/openapi.json", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, "alpr-central serve did not answer within 30 s"
            time.sleep(0.1)

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)


# -- units and reads --------------------------------------------------------------------------------
@dataclass
class EnrolledUnit:
    unit_id: str
    site: str
    key: Ed25519PrivateKey
    sealing_key: Any                       # the X25519 public key the store handed over at enrolment


def enrol_unit(central_url: str, store: Store, unit_id: str = "unit-1", site: str = "gate-1") -> EnrolledUnit:
    """Enrol over HTTP with a token made the way `units enroll-token` makes it."""
    token, _ = units.make_token(store.engine, site, timedelta(minutes=10))
    key = Ed25519PrivateKey.generate()
    answer = enroll(central_url, token, unit_id, key)
    return EnrolledUnit(unit_id, answer["site"], key, seal.load_sealing_public(answer["sealing_public_key"]))


def make_read(unit: EnrolledUnit, recipient=None, **overrides: Any) -> tuple[str, str, dict[str, Any]]:
    """A valid schema-v1 read, sealed; returns (read_id, captured_at, envelope)."""
    read_id = overrides.pop("read_id", str(uuid.uuid4()))
    payload = Read(read_id=read_id, unit_id=unit.unit_id, site=unit.site, lane="1", direction="in",
                   captured_at=utc_ms(time.time()), plate="7ABC123", region="us-ca", confidence=0.93,
                   candidates=[{"plate": "7ABC123", "score": 0.93}, {"plate": "7A8C123", "score": 0.04}],
                   box=[10, 20, 110, 50], model={"detector": "d1", "reader": "r1"},
                   trigger={"sensor": "loop-1", "edge_at": utc_ms(time.time())},
                   crop_jpeg_b64=base64.b64encode(JPEG).decode("ascii")).to_payload()
    payload.update(overrides)
    return read_id, payload["captured_at"], seal.seal(payload, recipient or unit.sealing_key, read_id)


def batch_body(reads: list[tuple[str, str, dict[str, Any]]]) -> bytes:
    return json.dumps(batch.request(batch.item(r, c, e) for r, c, e in reads)).encode()


def fill_buffer(buffer, unit: EnrolledUnit, n: int) -> list[str]:
    ids = []
    for _ in range(n):
        rid, cap, env = make_read(unit)
        buffer.put(rid, cap, env)
        ids.append(rid)
    return ids


def run_uplink(uplink, seconds: float) -> bool:
    """Run `uplink` in a thread until nothing is pending or `seconds` have passed, then stop it. True if
    it emptied the buffer's queue within `seconds` (it returns by itself then)."""
    stop = threading.Event()
    t = threading.Thread(target=uplink.run, args=(stop, True), daemon=True)
    t.start()
    t.join(seconds)
    emptied = not t.is_alive()
    stop.set()
    t.join(5)
    assert not t.is_alive(), "the uplink did not stop within 5 s of being told"
    return emptied


class DropProxy:
    """Loopback TCP proxy that can cut connections mid-response.

    `plan` holds one decision per answer coming back from the server, in order (True: cut it after
    its first bytes and close both connections - the server has done the work, the unit never sees
    the verdict; False: pass it on). Answers past the plan pass.
    """

    def __init__(self, upstream_port: int):
        self.upstream = ("127.0.0.1", upstream_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.plan: deque[bool] = deque()
        self.dropped = 0
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _cut(self, chunk: bytes) -> bool:
        if not chunk.startswith(b"HTTP/"):                # the rest of an answer already passed
            return False
        with self._lock:
            cut = self.plan.popleft() if self.plan else False
            self.dropped += cut
            return cut

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.upstream)
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, is_answer: bool) -> None:
        try:
            while data := src.recv(65536):
                if is_answer and self._cut(data):
                    dst.sendall(data[:12])                    # "HTTP/1.1 200" and then nothing
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self) -> None:
        self._closed = True
        self.listener.close()
