"""The buffer's bounds: its age bound is not triggered by a step of the wall clock (a Pi without a
real-time clock seals reads under a slow clock until NTP steps it forward by weeks), yet still works;
ages go on across restarts; and drops at a bound are said in the log, once per episode, with counts.
Real SQLite files; both clocks injected."""
from __future__ import annotations

import logging

import pytest

from unit.buffer import SealedBuffer, read_stats
from wire.read import new_read_id
from wire.times import utc_ms

DAY = 86400.0


class Clock:
    def __init__(self, t: float):
        self.t = t

    def __call__(self) -> float:
        return self.t


def envelope(n: int = 50) -> dict:
    return {"v": 1, "kid": "k", "epk": "e", "nonce": "n", "ct": "x" * n}


def put(buf: SealedBuffer, wall: Clock, n: int) -> list[str]:
    ids = [new_read_id() for _ in range(n)]
    for rid in ids:
        buf.put(rid, utc_ms(wall.t), envelope())
    return ids


def test_ntp_stepping_the_clock_forward_40_days_drops_nothing(tmp_path):
    wall = Clock(1_704_067_200.0)           # 2024-01-01: where a Pi's clock stands after boot, before NTP
    buf = SealedBuffer(tmp_path / "b.sqlite", max_age_s=30 * DAY, clock=wall)     # the real monotonic clock
    sealed = put(buf, wall, 5)
    wall.t += 40 * DAY                      # NTP: the real date is 40 days on
    later = put(buf, wall, 1)               # a put applies the bounds
    assert [r.read_id for r in buf.pending()] == sealed + later
    st = buf.stats()
    assert st["dropped"] == 0 and st["depth"] == 6 and st["oldest_unsent_age_s"] < 60
    wall.t -= 300 * DAY                     # and a step back: nothing young becomes old, the order holds
    put(buf, wall, 1)
    assert [r.read_id for r in buf.pending()][:6] == sealed + later and buf.stats()["dropped"] == 0
    buf.close()


def test_the_age_bound_still_holds_on_running_time(tmp_path):
    wall, mono = Clock(1_704_067_200.0), Clock(100.0)
    buf = SealedBuffer(tmp_path / "b.sqlite", max_age_s=30 * DAY, clock=wall, monotonic=mono)
    old = put(buf, wall, 5)
    mono.t += 20
    wall.t += 20 + 40 * DAY
    assert buf.stats()["oldest_unsent_age_s"] == pytest.approx(20.0)
    mono.t += 30 * DAY                      # 30 days of running time later, the unsent reads go, counted
    fresh = put(buf, wall, 1)
    assert [r.read_id for r in buf.pending()] == fresh and not set(old) & {r.read_id for r in buf.pending()}
    st = buf.stats()
    assert st["dropped_age"] == 5 and st["dropped"] == 5
    buf.close()


def test_ages_go_on_across_restarts_and_another_process_sees_them(tmp_path):
    path = tmp_path / "b.sqlite"
    wall, mono = Clock(1_704_067_200.0), Clock(50.0)
    buf = SealedBuffer(path, max_age_s=10 * DAY, clock=wall, monotonic=mono)
    ids = put(buf, wall, 3)
    mono.t += 6 * DAY
    assert buf.stats()["oldest_unsent_age_s"] == pytest.approx(6 * DAY)
    buf.close()

    # a reboot: the monotonic clock starts again near 0, the wall clock is a year off; the reads are
    # 6 days old, and the time the unit was off does not count
    wall.t += 365 * DAY
    mono.t = 12.0
    buf = SealedBuffer(path, max_age_s=10 * DAY, clock=wall, monotonic=mono)
    assert buf.stats()["oldest_unsent_age_s"] == pytest.approx(6 * DAY)
    assert read_stats(path)["oldest_unsent_age_s"] == pytest.approx(6 * DAY)     # alpr-unit status's view
    mono.t += 3 * DAY
    put(buf, wall, 1)
    assert [r.read_id for r in buf.pending()][:3] == ids            # 9 days: kept
    mono.t += 2 * DAY
    put(buf, wall, 1)
    assert ids[0] not in [r.read_id for r in buf.pending()]        # 11 days of running: gone
    assert buf.stats()["dropped_age"] == 3
    buf.close()


def test_a_file_from_before_keeps_its_reads(tmp_path):
    """A buffer written before ages were counted this way (no held_at column) opens with its reads, aged 0."""
    import sqlite3
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE reads (read_id TEXT PRIMARY KEY, captured_at TEXT NOT NULL, envelope TEXT NOT NULL,"
                 " ct BLOB, size INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, state TEXT NOT NULL DEFAULT"
                 " 'pending', reason TEXT, stored_at FLOAT NOT NULL, last_attempt_at FLOAT, sent_at FLOAT)")
    conn.execute("CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER)")
    rid = new_read_id()
    conn.execute("INSERT INTO reads (read_id, captured_at, envelope, size, stored_at) VALUES (?, ?, ?, 10, 5.0)",
                 (rid, "2024-01-01T00:00:00.000Z", '{"v": 1}'))
    conn.commit()
    conn.close()
    buf = SealedBuffer(path, max_age_s=DAY)
    assert [r.read_id for r in buf.pending()] == [rid] and buf.stats()["oldest_unsent_age_s"] < 5
    buf.close()


def test_drops_at_the_byte_bound_are_logged_once_per_episode_with_counts(tmp_path, caplog):
    with SealedBuffer(tmp_path / "scratch.sqlite") as scratch:      # the size one read counts for
        rid = put(scratch, Clock(0.0), 1)[0]
        one = scratch.get(rid)["size"]
    wall, mono = Clock(1_704_067_200.0), Clock(0.0)
    buf = SealedBuffer(tmp_path / "b.sqlite", max_bytes=one * 4, clock=wall, monotonic=mono)
    caplog.set_level(logging.WARNING, logger="unit.buffer")
    ids = put(buf, wall, 4)
    assert buf.stats()["dropped"] == 0 and not caplog.records
    put(buf, wall, 6)                                   # central unreachable: six more, six oldest dropped
    assert buf.stats()["dropped_bytes"] == 6
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "being dropped at its byte bound" in lines[0]
    buf.mark_sent([r.read_id for r in buf.pending()])     # delivered at last: room again
    put(buf, wall, 1)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and "dropped 6 unsent reads (6 at the byte bound, 0 at the age bound)" in lines[1]
    put(buf, wall, 2)
    assert len(caplog.records) == 2                    # no drop, nothing more said
    assert ids[0] not in [r.read_id for r in buf.pending()]
    buf.close()
