"""The sealed rolling buffer: where reads wait, already sealed, until central acknowledges them.

Only what the uplink needs is in clear (read_id, captured_at, size, attempts, state, times); the payload
is an envelope from `wire.seal`, which this unit cannot open (its ciphertext is kept as raw bytes, a
quarter smaller than its base64). SQLite in WAL mode with synchronous=FULL,
so a `put()` that returned survives `kill -9` and power loss, and a write cut short leaves nothing.

Bounded by bytes (sum of stored sizes) and by age. When a bound is hit, acknowledged reads go first,
then quarantined ones, and only then the oldest unsent reads, each one counted as dropped.
"""
from __future__ import annotations

import base64
import binascii
import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import sqlite_utils

PENDING, SENT, QUARANTINED = "pending", "sent", "quarantined"
# eviction order when a bound is hit: acknowledged, then quarantined, then unsent (oldest first in each)
_EVICT_ORDER = f"CASE state WHEN '{SENT}' THEN 0 WHEN '{QUARANTINED}' THEN 1 ELSE 2 END, stored_at, rowid"
_COUNTERS = ("dropped_bytes", "dropped_age", "sent", "evicted", "stored")


class StoreError(RuntimeError):
    """A read could not be stored (disk full, I/O error); the message says which."""


class BufferFull(StoreError):
    """The disk (or the database's page limit) is full even after evicting acknowledged reads."""


@dataclass
class BufferedRead:
    read_id: str
    captured_at: str
    envelope: dict
    attempts: int
    size: int


def _pack(envelope: dict) -> tuple[str, bytes | None]:
    """Envelope -> (JSON without the ciphertext, ciphertext bytes); only when base64 round-trips exactly."""
    ct = envelope.get("ct")
    if isinstance(ct, str):
        try:
            raw = base64.b64decode(ct, validate=True)
        except (ValueError, binascii.Error):
            raw = None
        if raw is not None and base64.b64encode(raw).decode("ascii") == ct:
            rest = {k: v for k, v in envelope.items() if k != "ct"}
            return json.dumps(rest, separators=(",", ":"), sort_keys=True), raw
    return json.dumps(envelope, separators=(",", ":"), sort_keys=True), None


def _unpack(body: str, ct: bytes | None) -> dict:
    env = json.loads(body)
    if ct is not None:
        env["ct"] = base64.b64encode(ct).decode("ascii")
    return env


def _is_full(exc: sqlite3.Error) -> bool:
    return getattr(exc, "sqlite_errorcode", None) == 13 or "full" in str(exc).lower()


class SealedBuffer:
    """Durable FIFO of sealed reads in one SQLite file; safe to share between threads of one process."""

    def __init__(self, path: str | Path, max_bytes: int = 512 * 1024 * 1024, max_age_s: float = 30 * 86400,
                 clock: Callable[[], float] = time.time):
        self.path = Path(path)
        self.max_bytes = int(max_bytes)
        self.max_age_s = float(max_age_s)
        self._clock = clock
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False, timeout=10)
        self._conn.execute("PRAGMA auto_vacuum=INCREMENTAL")   # only takes effect on a new file
        self.db = sqlite_utils.Database(self._conn)
        self.db.enable_wal()
        self._conn.execute("PRAGMA synchronous=FULL")
        self._create()

    def _create(self) -> None:
        if "reads" not in self.db.table_names():
            self.db["reads"].create({
                "read_id": str, "captured_at": str, "envelope": str, "ct": bytes, "size": int, "attempts": int,
                "state": str, "reason": str, "stored_at": float, "last_attempt_at": float, "sent_at": float,
            }, pk="read_id", not_null={"captured_at", "envelope", "size", "attempts", "state", "stored_at"},
                defaults={"attempts": 0, "state": PENDING}, if_not_exists=True)
            self.db["reads"].create_index(["state", "stored_at"], if_not_exists=True)
        if "counters" not in self.db.table_names():
            self.db["counters"].create({"name": str, "value": int}, pk="name", if_not_exists=True)

    # -- writing -------------------------------------------------------------------------------------
    def put(self, read_id: str, captured_at: str, envelope: dict) -> None:
        """Store one sealed read; durable when this returns. A read_id already stored is left as it is."""
        body, ct = _pack(envelope)
        size = len(body) + len(ct or b"") + len(read_id) + len(captured_at)
        if size > self.max_bytes:
            raise StoreError(f"read {read_id} is {size} bytes, larger than the whole buffer bound")
        with self._lock:
            try:
                self._put_locked(read_id, captured_at, body, ct, size)
            except sqlite3.Error as exc:
                if not _is_full(exc):
                    raise StoreError(f"cannot store read: {exc}") from exc
                # Disk full: make room from acknowledged reads, then try once more.
                freed = self._evict_acknowledged_locked()
                try:
                    self._put_locked(read_id, captured_at, body, ct, size)
                except sqlite3.Error as exc2:
                    raise BufferFull(f"disk full: cannot store read even after freeing {freed} "
                                     f"acknowledged reads ({exc2})") from exc2

    def _put_locked(self, read_id: str, captured_at: str, body: str, ct: bytes | None, size: int) -> None:
        now = self._clock()
        c = self._conn
        c.execute("BEGIN IMMEDIATE")
        try:
            cur = c.execute("INSERT OR IGNORE INTO reads (read_id, captured_at, envelope, ct, size, attempts, state,"
                            " stored_at) VALUES (?, ?, ?, ?, ?, 0, ?, ?)",
                            (read_id, captured_at, body, ct, size, PENDING, now))
            if cur.rowcount:
                self._bump("stored", 1)
            evicted = self._enforce_locked(now)
            c.execute("COMMIT")
        except BaseException:
            if c.in_transaction:
                c.execute("ROLLBACK")
            raise
        if evicted:
            self._reclaim()

    def _bump(self, name: str, n: int) -> None:
        if n:
            self._conn.execute("INSERT INTO counters (name, value) VALUES (?, ?) "
                               "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value", (name, n))

    def _enforce_locked(self, now: float) -> int:
        """Apply the age and byte bounds inside the caller's transaction; return rows removed."""
        c = self._conn
        cutoff = now - self.max_age_s
        old_unsent = c.execute("SELECT COUNT(*) FROM reads WHERE state = ? AND stored_at < ?",
                               (PENDING, cutoff)).fetchone()[0]
        removed = c.execute("DELETE FROM reads WHERE stored_at < ?", (cutoff,)).rowcount
        self._bump("dropped_age", old_unsent)
        self._bump("evicted", removed - old_unsent)
        total = c.execute("SELECT COALESCE(SUM(size), 0) FROM reads").fetchone()[0]
        if total <= self.max_bytes:
            return removed
        victims, dropped, evicted = [], 0, 0
        for rid, size, state in c.execute(f"SELECT read_id, size, state FROM reads ORDER BY {_EVICT_ORDER}"):
            if total <= self.max_bytes:
                break
            victims.append(rid)
            total -= size
            if state == PENDING:
                dropped += 1
            else:
                evicted += 1
        c.executemany("DELETE FROM reads WHERE read_id = ?", [(r,) for r in victims])
        self._bump("dropped_bytes", dropped)
        self._bump("evicted", evicted)
        return removed + len(victims)

    def _evict_acknowledged_locked(self) -> int:
        c = self._conn
        try:
            c.execute("BEGIN IMMEDIATE")
            n = c.execute("DELETE FROM reads WHERE state IN (?, ?)", (SENT, QUARANTINED)).rowcount
            self._bump("evicted", n)
            c.execute("COMMIT")
        except sqlite3.Error:
            if c.in_transaction:
                c.execute("ROLLBACK")
            return 0
        self._reclaim()
        return n

    def _reclaim(self) -> None:
        """Give freed pages back to the file system (SD cards fill up); harmless if it fails."""
        try:
            self._conn.execute("PRAGMA incremental_vacuum")
        except sqlite3.Error:
            pass

    def _update(self, sql: str, params: list[tuple], counter: str | None = None) -> int:
        with self._lock:
            c = self._conn
            c.execute("BEGIN IMMEDIATE")
            try:
                n = sum(c.execute(sql, p).rowcount for p in params)
                if counter:
                    self._bump(counter, n)
                c.execute("COMMIT")
            except BaseException:
                if c.in_transaction:
                    c.execute("ROLLBACK")
                raise
            return n

    def mark_sent(self, read_ids: list[str]) -> None:
        """Central acknowledged these reads (stored or duplicate): first in line for eviction."""
        now = self._clock()
        self._update(f"UPDATE reads SET state = '{SENT}', sent_at = ? WHERE read_id = ? AND state != '{SENT}'",
                     [(now, r) for r in read_ids], counter="sent")

    def mark_attempt(self, read_ids: list[str]) -> None:
        now = self._clock()
        self._update("UPDATE reads SET attempts = attempts + 1, last_attempt_at = ? WHERE read_id = ?",
                     [(now, r) for r in read_ids])

    def quarantine(self, read_id: str, reason: str) -> None:
        """Central rejected this read: keep it aside (never re-sent) with the reason."""
        self._update(f"UPDATE reads SET state = '{QUARANTINED}', reason = ? WHERE read_id = ? AND state = '{PENDING}'",
                     [(reason, read_id)])

    # -- reading -------------------------------------------------------------------------------------
    def pending(self, limit: int = 100) -> list[BufferedRead]:
        """Unsent, not quarantined reads, oldest first."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT read_id, captured_at, envelope, ct, attempts, size FROM reads WHERE state = ? "
                "ORDER BY stored_at, rowid LIMIT ?", (PENDING, int(limit))).fetchall()
        return [BufferedRead(r[0], r[1], _unpack(r[2], r[3]), r[4], r[5]) for r in rows]

    def get(self, read_id: str) -> dict[str, Any] | None:
        """One row as stored (envelope parsed), for inspection and tests."""
        with self._lock:
            rows = list(self.db.query("SELECT * FROM reads WHERE read_id = ?", [read_id]))
        if not rows:
            return None
        row = rows[0]
        row["envelope"] = _unpack(row["envelope"], row.pop("ct"))
        return row

    def stats(self) -> dict[str, Any]:
        """depth (unsent count), oldest_unsent_age_s, bytes, dropped, quarantined, sent (acknowledged ever),
        plus dropped_age, dropped_bytes, evicted, stored (ever), file_bytes."""
        with self._lock:
            return _stats(self._conn, self._clock(), self.path)

    def close(self) -> None:
        with self._lock:
            try:
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:
                pass
            self._conn.close()

    def __enter__(self) -> "SealedBuffer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _stats(conn: sqlite3.Connection, now: float, path: Path) -> dict[str, Any]:
    by_state = dict(conn.execute("SELECT state, COUNT(*) FROM reads GROUP BY state").fetchall())
    oldest = conn.execute("SELECT MIN(stored_at) FROM reads WHERE state = ?", (PENDING,)).fetchone()[0]
    total = conn.execute("SELECT COALESCE(SUM(size), 0) FROM reads").fetchone()[0]
    counters = dict(conn.execute("SELECT name, value FROM counters").fetchall())
    c = {k: int(counters.get(k, 0)) for k in _COUNTERS}
    file_bytes = sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())
    return {
        "depth": int(by_state.get(PENDING, 0)),
        "oldest_unsent_age_s": None if oldest is None else max(0.0, now - oldest),
        "bytes": int(total),
        "dropped": c["dropped_bytes"] + c["dropped_age"],
        "quarantined": int(by_state.get(QUARANTINED, 0)),
        "sent": c["sent"],
        "sent_held": int(by_state.get(SENT, 0)),
        "dropped_age": c["dropped_age"],
        "dropped_bytes": c["dropped_bytes"],
        "evicted": c["evicted"],
        "stored": c["stored"],
        "file_bytes": file_bytes,
    }


def read_stats(path: str | Path, now: float | None = None) -> dict[str, Any]:
    """Stats of a buffer file from another process (`alpr-unit status`), read-only."""
    p = Path(path)
    if not p.exists():
        raise StoreError(f"{p}: no buffer file")
    conn = sqlite3.connect(f"file:{p}?mode=ro", uri=True, timeout=5)
    try:
        return _stats(conn, time.time() if now is None else now, p)
    finally:
        conn.close()
