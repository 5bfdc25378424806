"""The sealed rolling buffer: where reads wait, already sealed, until central acknowledges them.

Only what the uplink needs is in clear (read_id, captured_at, size, attempts, state, times); the payload
is an envelope from `wire.seal`, which this unit cannot open (its ciphertext is kept as raw bytes, a
quarter smaller than its base64). SQLite in WAL mode with synchronous=FULL,
so a `put()` that returned survives `kill -9` and power loss, and a write cut short leaves nothing.

Bounded by bytes (sum of stored sizes) and by age. When a bound is hit, acknowledged reads go first,
then quarantined ones, and only then the oldest unsent reads, each one counted as dropped and logged
(once when the dropping starts, once with the counts when it stops).

A read's age is how long the unit has been running since it was stored: the monotonic clock (which
NTP never steps), carried across restarts in the file as the buffer's own running time (`age_clock`).
So a Pi that sealed reads under a slow clock before NTP (no real-time clock) keeps them when NTP steps
the clock forward by weeks; the time a unit is switched off does not age its reads either.

A damaged file is caught: `PRAGMA quick_check` when it is opened (BufferCorrupt), and every SQLite
error that says "corrupt" while it runs is a BufferCorrupt too; `unit.salvage` moves such a file aside,
starts a new one and carries over what can still be read from the old one, counting the rest as lost.
"""
from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import sqlite_utils

log = logging.getLogger("unit.buffer")

PENDING, SENT, QUARANTINED = "pending", "sent", "quarantined"
# eviction order when a bound is hit: acknowledged, then quarantined, then unsent (oldest first in each)
_EVICT_ORDER = f"CASE state WHEN '{SENT}' THEN 0 WHEN '{QUARANTINED}' THEN 1 ELSE 2 END, held_at, rowid"
_COUNTERS = ("dropped_bytes", "dropped_age", "sent", "evicted", "stored", "quarantined_ever", "salvaged", "lost",
             "lost_unknown")
AGE_CLOCK = "age_clock_ms"          # the buffer's running time, in the counters table
AGE_PERSIST_S = 5.0                 # the running time is written at least this often while stats are asked
_CORRUPT_CODES = {11, 26}           # SQLITE_CORRUPT, SQLITE_NOTADB


class StoreError(RuntimeError):
    """A read could not be stored (disk full, I/O error); the message says which."""


class BufferFull(StoreError):
    """The disk (or the database's page limit) is full even after evicting acknowledged reads."""


class BufferCorrupt(StoreError):
    """The buffer file is damaged (failed its integrity check, or SQLite says it is malformed)."""


def is_corrupt(exc: BaseException) -> bool:
    """Does this SQLite error say the file is damaged (not merely busy, full or closed)?"""
    if isinstance(exc, BufferCorrupt):
        return True
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in _CORRUPT_CODES
    text = str(exc).lower()
    return isinstance(exc, sqlite3.DatabaseError) and ("malformed" in text or "not a database" in text)


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
    """Durable FIFO of sealed reads in one SQLite file; safe to share between threads of one process.

    `clock` is the wall clock (the times kept for people: stored_at, sent_at); `monotonic` measures
    ages (see the module's docstring); both can be injected. `check` runs SQLite's quick_check at open
    and raises BufferCorrupt when the file fails it."""

    def __init__(self, path: str | Path, max_bytes: int = 512 * 1024 * 1024, max_age_s: float = 30 * 86400,
                 clock: Callable[[], float] = time.time, monotonic: Callable[[], float] = time.monotonic,
                 check: bool = False):
        self.path = Path(path)
        self.max_bytes = int(max_bytes)
        self.max_age_s = float(max_age_s)
        self._clock = clock
        self._mono = monotonic
        self._lock = threading.Lock()
        self._dropping: dict[str, int] | None = None      # an episode of drops at a bound, being counted
        self._closed = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False, timeout=10)
        try:
            with self._corruption():
                self._conn.execute("PRAGMA auto_vacuum=INCREMENTAL")   # only takes effect on a new file
                self.db = sqlite_utils.Database(self._conn)
                self.db.enable_wal()
                self._conn.execute("PRAGMA synchronous=FULL")
                if check:
                    problems = self._quick_check()
                    if problems:
                        raise BufferCorrupt(f"{self.path} failed its integrity check: {'; '.join(problems[:3])}")
                self._create()
                self._age0 = self._counter(AGE_CLOCK) / 1000.0
        except BaseException:
            self._conn.close()
            raise
        self._mono0 = self._mono()
        self._age_persisted = self._mono0

    @contextlib.contextmanager
    def _corruption(self) -> Iterator[None]:
        """SQLite errors that say the file is damaged, as BufferCorrupt (naming the file)."""
        try:
            yield
        except sqlite3.Error as exc:
            if is_corrupt(exc):
                raise BufferCorrupt(f"{self.path}: {exc}") from exc
            raise

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (the caller holds the lock): committed, or rolled back on any error."""
        c = self._conn
        c.execute("BEGIN IMMEDIATE")
        try:
            yield c
            c.execute("COMMIT")
        except BaseException:
            if c.in_transaction:
                c.execute("ROLLBACK")
            raise

    def _quick_check(self) -> list[str]:
        rows = [r[0] for r in self._conn.execute("PRAGMA quick_check(20)").fetchall()]
        return [] if rows == ["ok"] else rows

    def check(self) -> list[str]:
        """Run SQLite's quick_check now: [] when the file is sound, else what it found."""
        with self._lock:
            try:
                return self._quick_check()
            except sqlite3.Error as exc:
                return [str(exc)]

    def _create(self) -> None:
        if "reads" not in self.db.table_names():
            self.db["reads"].create({
                "read_id": str, "captured_at": str, "envelope": str, "ct": bytes, "size": int, "attempts": int,
                "state": str, "reason": str, "stored_at": float, "last_attempt_at": float, "sent_at": float,
                "held_at": float,
            }, pk="read_id", not_null={"captured_at", "envelope", "size", "attempts", "state", "stored_at"},
                defaults={"attempts": 0, "state": PENDING}, if_not_exists=True)
        elif "held_at" not in self.db["reads"].columns_dict:
            # a file from before ages were counted on the monotonic clock: its reads start at age 0
            self._conn.execute("ALTER TABLE reads ADD COLUMN held_at FLOAT")
            self._conn.execute("UPDATE reads SET held_at = 0")
        self.db["reads"].create_index(["state", "held_at"], if_not_exists=True)
        if "counters" not in self.db.table_names():
            self.db["counters"].create({"name": str, "value": int}, pk="name", if_not_exists=True)

    def _counter(self, name: str) -> int:
        row = self._conn.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
        return int(row[0]) if row else 0

    # -- the buffer's own clock -------------------------------------------------------------------------
    def age_clock(self) -> float:
        """Seconds the buffer has been open, over all its runs: the clock its ages are measured on."""
        return self._age0 + max(0.0, self._mono() - self._mono0)

    def _persist_age_locked(self, now: float) -> None:
        """Write the running time (inside the caller's transaction); it never goes back."""
        self._conn.execute(
            "INSERT INTO counters (name, value) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value = MAX(value, excluded.value)", (AGE_CLOCK, int(now * 1000)))
        self._age_persisted = self._mono()

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
                if is_corrupt(exc):
                    raise BufferCorrupt(f"cannot store read: {self.path}: {exc}") from exc
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
        now, age = self._clock(), self.age_clock()
        with self._transaction() as c:
            cur = c.execute("INSERT OR IGNORE INTO reads (read_id, captured_at, envelope, ct, size, attempts, state,"
                            " stored_at, held_at) VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?)",
                            (read_id, captured_at, body, ct, size, PENDING, now, age))
            if cur.rowcount:
                self._bump("stored", 1)
            self._persist_age_locked(age)
            evicted, dropped = self._enforce_locked(age)
        self._note_drops(dropped)
        if evicted:
            self._reclaim()

    def _bump(self, name: str, n: int) -> None:
        if n:
            self._conn.execute("INSERT INTO counters (name, value) VALUES (?, ?) "
                               "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value", (name, n))

    def _enforce_locked(self, age: float) -> tuple[int, dict[str, int]]:
        """Apply the age and byte bounds inside the caller's transaction; return (rows removed,
        unsent reads dropped by each bound)."""
        c = self._conn
        cutoff = age - self.max_age_s
        old_unsent = c.execute("SELECT COUNT(*) FROM reads WHERE state = ? AND held_at < ?",
                               (PENDING, cutoff)).fetchone()[0]
        removed = c.execute("DELETE FROM reads WHERE held_at < ?", (cutoff,)).rowcount
        self._bump("dropped_age", old_unsent)
        self._bump("evicted", removed - old_unsent)
        total = c.execute("SELECT COALESCE(SUM(size), 0) FROM reads").fetchone()[0]
        if total <= self.max_bytes:
            return removed, {"age": old_unsent, "bytes": 0}
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
        return removed + len(victims), {"age": old_unsent, "bytes": dropped}

    def _note_drops(self, dropped: dict[str, int]) -> None:
        """Log drops once per episode: when unsent reads start to go, and, with the counts, when a read
        is stored again without dropping any (the backlog is being delivered, or the bound was raised)."""
        n = dropped["age"] + dropped["bytes"]
        if n and self._dropping is None:
            self._dropping = {"age": 0, "bytes": 0}
            why = (f"its byte bound ({self.max_bytes / 1e6:.3g} MB)" if dropped["bytes"]
                   else f"its age bound ({self.max_age_s / 86400:g} days)")
            log.warning("buffer: unsent reads are being dropped at %s, oldest first (counted in status and "
                        "heartbeat as dropped): the central store has not taken them", why,
                        extra={"fields": {"event": "buffer_dropping", **dropped}})
        if self._dropping is not None:
            if n:
                self._dropping = {k: self._dropping[k] + dropped[k] for k in dropped}
            else:
                d, self._dropping = self._dropping, None
                log.warning("buffer: no more reads dropped; this episode dropped %d unsent reads "
                            "(%d at the byte bound, %d at the age bound)", d["age"] + d["bytes"], d["bytes"],
                            d["age"], extra={"fields": {"event": "buffer_dropped", **d}})

    def _evict_acknowledged_locked(self) -> int:
        try:
            with self._transaction() as c:
                n = c.execute("DELETE FROM reads WHERE state IN (?, ?)", (SENT, QUARANTINED)).rowcount
                self._bump("evicted", n)
        except sqlite3.Error:
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
        with self._lock, self._corruption(), self._transaction() as c:
            n = sum(c.execute(sql, p).rowcount for p in params)
            if counter:
                self._bump(counter, n)
            self._persist_age_locked(self.age_clock())
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
                     [(reason, read_id)], counter="quarantined_ever")

    # -- reading -------------------------------------------------------------------------------------
    def pending(self, limit: int = 100) -> list[BufferedRead]:
        """Unsent, not quarantined reads, oldest first."""
        with self._lock, self._corruption():
            rows = self._conn.execute(
                "SELECT read_id, captured_at, envelope, ct, attempts, size FROM reads WHERE state = ? "
                "ORDER BY held_at, rowid LIMIT ?", (PENDING, int(limit))).fetchall()
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
        plus dropped_age, dropped_bytes, evicted, stored (ever), salvaged and lost (carried over from,
        and left unreadable in, a damaged file), file_bytes."""
        with self._lock, self._corruption():
            age = self.age_clock()
            if self._mono() - self._age_persisted >= AGE_PERSIST_S:   # for `alpr-unit status`, read-only
                try:
                    self._persist_age_locked(age)
                except sqlite3.OperationalError:
                    pass            # busy or full: written with the next read
            return _stats(self._conn, age, self.path)

    def adopt(self, rows: list[dict[str, Any]], lost: int | None) -> int:
        """Take reads carried over from a damaged buffer (`unit.salvage`): pending and quarantined rows
        as they were (their ages go on from where they were), and count `lost` reads that could not be
        read back (None: a damaged file whose losses could not be counted, counted as `lost_unknown`).
        Returns how many were taken."""
        with self._lock, self._transaction() as c:
            n = 0
            for r in rows:
                body, ct = _pack(r["envelope"])
                n += c.execute(
                    "INSERT OR IGNORE INTO reads (read_id, captured_at, envelope, ct, size, attempts, state, "
                    "reason, stored_at, held_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (r["read_id"], r["captured_at"], body, ct, r["size"], r.get("attempts") or 0, r["state"],
                     r.get("reason"), r.get("stored_at") or self._clock(), r.get("held_at") or 0.0)).rowcount
            top = max([r.get("held_at") or 0.0 for r in rows] + [self.age_clock()])
            self._age0 += top - self.age_clock()
            self._persist_age_locked(top)
            self._bump("salvaged", n)
            self._bump("lost", lost or 0)
            self._bump("lost_unknown", int(lost is None))
            return n

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                with self._transaction():
                    self._persist_age_locked(self.age_clock())
            except sqlite3.Error:
                pass
            try:
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:
                pass
            self._conn.close()
        if self._dropping:
            d = self._dropping
            log.warning("buffer: closed while dropping: %d unsent reads dropped in this episode",
                        d["age"] + d["bytes"], extra={"fields": {"event": "buffer_dropped", **d}})

    def __enter__(self) -> "SealedBuffer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _stats(conn: sqlite3.Connection, age: float, path: Path) -> dict[str, Any]:
    by_state = dict(conn.execute("SELECT state, COUNT(*) FROM reads GROUP BY state").fetchall())
    oldest = conn.execute("SELECT MIN(held_at) FROM reads WHERE state = ?", (PENDING,)).fetchone()[0]
    total = conn.execute("SELECT COALESCE(SUM(size), 0) FROM reads").fetchone()[0]
    counters = dict(conn.execute("SELECT name, value FROM counters").fetchall())
    c = {k: int(counters.get(k, 0)) for k in _COUNTERS}
    file_bytes = sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())
    return {
        "depth": int(by_state.get(PENDING, 0)),
        "oldest_unsent_age_s": None if oldest is None else round(max(0.0, age - oldest), 3),
        "bytes": int(total),
        "dropped": c["dropped_bytes"] + c["dropped_age"],
        "quarantined": int(by_state.get(QUARANTINED, 0)),
        "sent": c["sent"],
        "sent_held": int(by_state.get(SENT, 0)),
        "dropped_age": c["dropped_age"],
        "dropped_bytes": c["dropped_bytes"],
        "evicted": c["evicted"],
        "stored": c["stored"],
        "salvaged": c["salvaged"],
        "lost": c["lost"],
        "lost_unknown": c["lost_unknown"],
        "file_bytes": file_bytes,
    }


def read_stats(path: str | Path) -> dict[str, Any]:
    """Stats of a buffer file from another process (`alpr-unit status`), read-only. Ages are measured
    on the running time the service last wrote (at most a few seconds behind)."""
    p = Path(path)
    if not p.exists():
        raise StoreError(f"{p}: no buffer file")
    conn = sqlite3.connect(f"file:{p}?mode=ro", uri=True, timeout=5)
    try:
        row = conn.execute("SELECT value FROM counters WHERE name = ?", (AGE_CLOCK,)).fetchone()
        return _stats(conn, (row[0] if row else 0) / 1000.0, p)
    finally:
        conn.close()
