"""A damaged buffer file: moved aside, a new one started, what can still be read carried over, the rest counted.

When the buffer fails its integrity check (`unit.buffer.BufferCorrupt`, at open or after a storage
error while running) the file and its WAL are renamed `<name>.corrupt-<unix time>` (kept for whoever
wants to look at them) and a new, empty buffer takes their place, so new reads are stored at once.
Then the old file is read row by row: a damaged page costs the rows on it, not the file; a row that
cannot be read on its own is skipped. A damaged header (the first 100 bytes: "file is not a database")
is rebuilt on a scratch copy from a fresh file's header and the old file's size, so the pages behind it
can be read. Unsent and quarantined reads read back go into the new buffer as they were; unsent reads
that could not be read back are counted as lost - from the old file's index of read states when that
can be read, else from its counters - and the count is kept in the new file (`stats()["lost"]`), so
status and the heartbeat show it.
"""
from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from unit.buffer import PENDING, QUARANTINED, SealedBuffer, _unpack

log = logging.getLogger("unit.salvage")

COLUMNS = ("read_id", "captured_at", "envelope", "ct", "size", "attempts", "state", "reason", "stored_at", "held_at")
_MAX_ROWID = 1 << 62


@dataclass
class Salvage:
    rows: list[dict[str, Any]] = field(default_factory=list)     # unsent and quarantined reads read back
    lost: int | None = None                                      # unsent reads not read back; None: unknown
    unreadable_rows: int = 0                                     # rows found but not readable
    notes: list[str] = field(default_factory=list)


@dataclass
class Recovery:
    aside: Path
    salvaged: int
    lost: int | None
    notes: list[str]

    def detail(self) -> str:
        lost = "an unknown number" if self.lost is None else str(self.lost)
        return (f"damaged file moved to {self.aside.name}; {self.salvaged} reads carried over, "
                f"{lost} unsent reads lost")


def move_aside(path: Path, now: Callable[[], float] = time.time) -> Path:
    """Rename the buffer file and its WAL and shared-memory files out of the way; return the new name."""
    aside = path.with_name(f"{path.name}.corrupt-{int(now())}")
    n = 1
    while aside.exists():
        aside = path.with_name(f"{path.name}.corrupt-{int(now())}-{n}")
        n += 1
    for suffix in ("", "-wal", "-shm"):
        src = Path(f"{path}{suffix}")
        if src.exists():
            os.replace(src, f"{aside}{suffix}")
    return aside


def _header_template(page_size: int) -> bytes:
    """The first 100 bytes of a fresh SQLite file with this page size."""
    with tempfile.TemporaryDirectory() as d:
        conn = sqlite3.connect(os.path.join(d, "t.sqlite"))
        conn.execute(f"PRAGMA page_size={page_size}")
        conn.execute("CREATE TABLE t (x)")
        conn.commit()
        conn.close()
        with open(os.path.join(d, "t.sqlite"), "rb") as f:
            return f.read(100)


def repair_header(aside: Path) -> Path:
    """A scratch copy of `aside` with its header rebuilt (page size from the old header when it is
    plausible, else SQLite's default 4096; page count from the file's size; no free list; the WAL
    used when there is one). Only for reading back rows."""
    size = aside.stat().st_size
    with open(aside, "rb") as f:
        old = f.read(100)
    page = int.from_bytes(old[16:18], "big") if len(old) >= 18 else 0
    page = 65536 if page == 1 else page
    if not (512 <= page <= 65536 and page & (page - 1) == 0 and size % page == 0):
        page = 4096
    head = bytearray(_header_template(min(page, 65536)))
    head[16:18] = (1).to_bytes(2, "big") if page == 65536 else page.to_bytes(2, "big")
    wal = Path(f"{aside}-wal")
    mode = 2 if wal.exists() and wal.stat().st_size > 0 else 1
    head[18], head[19] = mode, mode
    head[24:28] = head[92:96] = (1).to_bytes(4, "big")        # change counter == valid-for: size is trusted
    head[28:32] = (size // page).to_bytes(4, "big")
    head[32:40] = bytes(8)                                      # no free list
    head[52:56] = head[64:68] = bytes(4)                        # read as if without auto-vacuum
    copy = aside.with_name(aside.name + ".repaired")
    shutil.copyfile(aside, copy)
    with open(copy, "r+b") as f:
        f.write(bytes(head))
    if mode == 2:
        shutil.copyfile(wal, f"{copy}-wal")
    return copy


def _open(path: Path) -> tuple[sqlite3.Connection, list[str]]:
    """A connection that can read the reads table's layout; DatabaseError when the file cannot."""
    conn = sqlite3.connect(str(path), isolation_level=None, timeout=1)
    try:
        cols = [r[1] for r in conn.execute("PRAGMA table_info(reads)").fetchall()]
        if not cols:
            raise sqlite3.DatabaseError("no reads table")
        return conn, cols
    except BaseException:
        conn.close()
        raise


def _seek(conn: sqlite3.Connection, after: int) -> int | None:
    """The first rowid above `after` that can be reached, stepping over damaged pages: strides that double
    until a seek works, then halving back to the first start that works. None when nothing is left."""
    def first_above(x: int) -> int | None | bool:
        try:
            row = conn.execute("SELECT rowid FROM reads WHERE rowid > ? ORDER BY rowid LIMIT 1", (x,)).fetchone()
            return row[0] if row else None
        except sqlite3.DatabaseError:
            return False
    found = first_above(after)
    if found is not False:
        return found
    stride = 1
    while after + stride < _MAX_ROWID:
        found = first_above(after + stride)
        if found is not False:
            lo, hi = after + stride // 2, after + stride      # lo failed (or is `after`), hi works
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if first_above(mid) is False:
                    lo = mid
                else:
                    hi = mid
            return first_above(hi) or None
        stride *= 2
    return None


def _rows(conn: sqlite3.Connection, select: str, out: Salvage) -> Iterator[tuple]:
    """Every row that can be read, in rowid order; unreadable ones are skipped and counted."""
    after = 0
    while True:
        try:
            for row in conn.execute(f"SELECT rowid, {select} FROM reads WHERE rowid > ? ORDER BY rowid", (after,)):
                after = row[0]
                yield row
            return
        except sqlite3.DatabaseError:
            pass
        nxt = _seek(conn, after)
        if nxt is None:
            return
        try:
            row = conn.execute(f"SELECT rowid, {select} FROM reads WHERE rowid = ?", (nxt,)).fetchone()
        except sqlite3.DatabaseError:
            row = None
            out.unreadable_rows += 1
        if row is not None:
            yield row
        after = nxt


def _unsent_rowids(conn: sqlite3.Connection) -> set[int] | None:
    """Rowids of the unsent reads, from an index on state alone (its pages are not the table's)."""
    try:
        names = [r[0] for r in conn.execute("SELECT name FROM pragma_index_list('reads')").fetchall()]
    except sqlite3.DatabaseError:
        return None
    for name in names:
        try:
            first = conn.execute(f"SELECT name FROM pragma_index_info('{name}') WHERE seqno = 0").fetchone()
            if not first or first[0] != "state":
                continue
            return {r[0] for r in conn.execute(f'SELECT rowid FROM reads INDEXED BY "{name}" WHERE state = ?',
                                               (PENDING,))}
        except sqlite3.DatabaseError:
            continue
    return None


def _unsent_by_counters(conn: sqlite3.Connection) -> int | None:
    """Unsent reads the file should hold, by its counters (stored, minus delivered, dropped, quarantined)."""
    try:
        c = dict(conn.execute("SELECT name, value FROM counters").fetchall())
    except sqlite3.DatabaseError:
        return None
    if "stored" not in c:
        return None
    return max(0, c.get("stored", 0) + c.get("salvaged", 0) - c.get("sent", 0) - c.get("dropped_age", 0)
               - c.get("dropped_bytes", 0) - c.get("quarantined_ever", 0))


def salvage(aside: Path) -> Salvage:
    """Read back what can be read from a damaged buffer file (see the module's docstring)."""
    out = Salvage()
    scratch = None
    try:
        try:
            conn, cols = _open(aside)
        except sqlite3.DatabaseError as exc:
            out.notes.append(f"unreadable as it is ({exc}); header rebuilt on a copy")
            scratch = repair_header(aside)
            conn, cols = _open(scratch)
    except (sqlite3.DatabaseError, OSError) as exc:
        out.notes.append(f"nothing could be read: {exc}")
        if scratch is not None:
            _remove(scratch)
        return out
    try:
        select = ", ".join(c if c in cols else f"NULL AS {c}" for c in COLUMNS)
        pending_rowids: set[int] = set()
        for row in _rows(conn, select, out):
            doc = dict(zip(("rowid",) + COLUMNS, row))
            if doc["state"] not in (PENDING, QUARANTINED):
                continue
            try:
                if not isinstance(doc["read_id"], str) or not isinstance(doc["captured_at"], str):
                    raise ValueError("read_id or captured_at is not text")
                doc["envelope"] = _unpack(doc["envelope"], doc.pop("ct"))
                if not isinstance(doc["envelope"], dict):
                    raise ValueError("envelope is not an object")
            except (ValueError, TypeError) as exc:
                out.unreadable_rows += 1
                out.notes.append(f"row {doc['rowid']}: {exc}")
                continue
            out.rows.append(doc)
            if doc["state"] == PENDING:
                pending_rowids.add(doc["rowid"])
        indexed = _unsent_rowids(conn)
        if indexed is not None:
            out.lost = len(indexed - pending_rowids)
        else:
            expected = _unsent_by_counters(conn)
            out.lost = None if expected is None else max(0, expected - len(pending_rowids))
            out.notes.append("unsent reads counted from the file's counters (its index is damaged)"
                             if expected is not None else "how many unsent reads were lost is not known")
    finally:
        conn.close()
        if scratch is not None:
            _remove(scratch)
    return out


def _remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        try:
            os.unlink(f"{path}{suffix}")
        except FileNotFoundError:
            pass


def recover(path: Path, open_new: Callable[[], SealedBuffer]) -> tuple[SealedBuffer, Recovery]:
    """Move the damaged buffer at `path` aside, open a new one (`open_new`), carry over what can be read.
    The new buffer is returned even when nothing could be read back; a new one that cannot be made
    raises (StoreError, OSError, sqlite3.Error) after the old file was moved."""
    aside = move_aside(path)
    buf = open_new()
    try:
        found = salvage(aside)
    except Exception as exc:        # whatever the old file holds, the new buffer must go on
        found = Salvage(notes=[f"salvage failed: {type(exc).__name__}: {exc}"])
    n = buf.adopt(found.rows, found.lost)
    return buf, Recovery(aside, n, found.lost, found.notes)
