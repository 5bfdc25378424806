"""The central-store side of the HIL harness: a real store on loopback, enrolment, and watching reads arrive.

`LocalCentral` does what an operator does: `alpr-central init` into a home folder, `alpr-central serve`
as its own process on 127.0.0.1 and a free port, an enrolment token. `enrol_unit` does what a unit does
at provisioning (`unit.identity.enroll`) and keeps the identity key and the store's keys for the unit's
config. `ReadWatcher` sees reads as the store stores them.

The watcher opens the store's database directly (it is the harness's own test store, not a way in to
a real one) and, as policy 462.5(a) asks of every access to read data, appends an entry to the store's
audit log in the same transaction as each look that found reads: who (`hil-harness`), what was
queried, why, and how many.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from unit.identity import enroll
from unit.keys import save_ed25519_private
from wire.times import aware, parse_utc

AUDIT_WHO = "hil-harness"
AUDIT_PURPOSE = "ALPR equipment test (hardware-in-the-loop)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Enrolment:
    url: str
    unit_id: str
    site: str
    key_path: Path
    sealing_public_key: str          # base64 raw X25519: the unit seals reads to it
    signing_public_key: str          # base64 raw Ed25519: verifies hot lists


def enrol_unit(url: str, token: str, unit_id: str, folder: Path) -> Enrolment:
    """Make an Ed25519 identity, enrol it with a one-time token, keep the key (0600) in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    key_path = folder / f"{unit_id}.identity.pem"
    key_path.unlink(missing_ok=True)             # a fresh identity for every run, also in a reused --workdir
    save_ed25519_private(key_path, key)
    answer = enroll(url, token, unit_id, key)
    return Enrolment(url, unit_id, answer["site"], key_path, answer["sealing_public_key"],
                     answer["signing_public_key"])


class LocalCentral:
    """`alpr-central init` + `alpr-central serve` (a child process, own process group) on loopback."""

    def __init__(self, home: Path, db: str | None = None, port: int | None = None, log: Path | None = None,
                 serve_args: tuple[str, ...] = ()):
        self.home = Path(home)
        self.db = db
        self.serve_args = serve_args          # more `alpr-central serve` options (--workers, --rate, ...)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.proc: subprocess.Popen | None = None

    def _cli(self, *argv: str) -> list[str]:
        return [sys.executable, "-m", "central.cli", *argv, "--home", str(self.home),
                *(["--db", self.db] if self.db else [])]

    def init(self) -> None:
        from central import cli
        argv = ["init", "--home", str(self.home), *(["--db", self.db] if self.db else []), "--json"]
        import contextlib
        import io
        with contextlib.redirect_stdout(io.StringIO()):
            rc = cli.main(argv)
        if rc != 0:
            raise RuntimeError(f"alpr-central init failed ({rc})")

    def start(self, timeout: float = 60.0) -> "LocalCentral":
        self.init()
        repo = Path(__file__).resolve().parents[1]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(repo), os.environ.get("PYTHONPATH")]))}
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL
        self.proc = subprocess.Popen(self._cli("serve", "--host", "127.0.0.1", "--port", str(self.port),
                                               "--log-level", "warning", *self.serve_args),
                                     cwd=repo, env=env, stdout=out, stderr=out, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"alpr-central serve exited with {self.proc.returncode}"
                                   + (f" (log: {self.log})" if self.log else ""))
            try:
                if requests.get(self.url + "/openapi.json", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"alpr-central serve did not answer on {self.url} within {timeout:.0f} s")
            time.sleep(0.1)

    def token(self, site: str, ttl: timedelta = timedelta(hours=1)) -> str:
        from central import db, units
        from central.config import resolve_db
        engine = db.make_engine(resolve_db(self.home.resolve(), self.db))
        try:
            return units.make_token(engine, site, ttl)[0]
        finally:
            engine.dispose()

    @property
    def db_url(self) -> str:
        from central.config import resolve_db
        return resolve_db(self.home.resolve(), self.db)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
            except ProcessLookupError:
                pass
        self.proc = None

    def __enter__(self) -> "LocalCentral":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _ts(v: datetime | str) -> float:
    return aware(parse_utc(v) if isinstance(v, str) else v).timestamp()    # SQLite gives back naive UTC


@dataclass
class StoredRead:
    read_id: str
    lane: str
    plate: str
    confidence: float
    captured_at: float
    edge_at: str | None
    received_at: float
    low_confidence: bool = False       # the unit marked it (`trigger.low_confidence`, recognition.low_confidence_reads)


class ReadWatcher:
    """Polls the store for this unit's new reads; `on_read(StoredRead)` for each, in arrival order."""

    def __init__(self, db_url: str, unit_id: str, run_id: str, on_read: Callable[[StoredRead], None] | None = None,
                 interval_s: float = 0.1):
        from central import db
        self.engine = db.make_engine(db_url, pool_size=2)
        self.unit_id, self.run_id = unit_id, run_id
        self.on_read = on_read
        self.interval_s = interval_s
        self.seen: dict[str, StoredRead] = {}
        self.since = datetime.now(timezone.utc) - timedelta(seconds=5)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.error = ""

    def poll(self) -> list[StoredRead]:
        import sqlalchemy as sa

        from central import audit
        from central.schema import reads
        with self._lock:
            q = (sa.select(reads.c.read_id, reads.c.lane, reads.c.plate, reads.c.confidence, reads.c.captured_at,
                           reads.c.trigger, reads.c.received_at)
                 .where(reads.c.unit_id == self.unit_id, reads.c.received_at >= self.since)
                 .order_by(reads.c.received_at, reads.c.read_id))
            with self.engine.begin() as conn:
                rows = [r for r in conn.execute(q) if r.read_id not in self.seen]
                if rows:        # no log, no access: the entry is written with the look that found reads
                    audit.append(conn, audit.system(AUDIT_WHO), "view",
                                 {"unit_id": self.unit_id, "reads": "new since last look", "run": self.run_id},
                                 purpose=AUDIT_PURPOSE, case_number=self.run_id, result_count=len(rows))
            new = []
            for r in rows:
                trig = r.trigger if isinstance(r.trigger, dict) else json.loads(r.trigger or "{}")
                s = StoredRead(r.read_id, r.lane, r.plate, float(r.confidence), _ts(r.captured_at),
                               trig.get("edge_at"), _ts(r.received_at), trig.get("low_confidence") is True)
                self.seen[s.read_id] = s
                new.append(s)
        for s in new:
            if self.on_read is not None:
                self.on_read(s)
        return new

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.poll()
            except Exception as exc:      # the store busy or gone: say so once, keep looking
                if not self.error:
                    print(f"hil: cannot read the central store: {exc}", file=sys.stderr)
                self.error = str(exc)

    def start(self) -> "ReadWatcher":
        self._thread = threading.Thread(target=self._run, name="hil-watch", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        try:
            self.poll()                       # whatever arrived since the last look
        finally:
            self.engine.dispose()

