"""Retention purge of many expired reads: how long it takes, and that held reads survive.

    .venv/bin/python benchmarks/bench_retention.py                       # 1 million expired reads, PostgreSQL
    .venv/bin/python benchmarks/bench_retention.py --backend sqlite --expired 200000

Makes a throwaway database (PostgreSQL: `alpr_bench_retention_<hex>`, dropped after; SQLite: a temp
file), migrates it, and fills it with server-side SQL: --expired reads captured 6 to 7 years ago and
--recent reads from the last year, every read with a crop; an alert on 1 in 100 expired reads;
--held expired reads under an active legal hold and as many under a released one. Then it runs
`central.retention.run` (the code `alpr-central retention run` and the schedule call) and checks:
every expired read not actively held is gone with its images and alerts, every held read and every
recent read is still there, and the run is logged with those counts. Prints one JSON line.
"""
from __future__ import annotations

import argparse
import json
import secrets
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from central import audit, db, retention  # noqa: E402
from central.config import Settings  # noqa: E402

WHO = audit.Principal("bench", "benchmark")
JPEG_HEX = "ffd8ffe000104a46494600" + "00" * 180 + "ffd9"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def series(dialect: str, lo: int, hi: int) -> str:
    """A row source `g` counting lo..hi on either back end."""
    if dialect == "postgresql":
        return f"generate_series({lo}, {hi}) AS t(g)"
    return f"(WITH RECURSIVE s(g) AS (SELECT {lo} UNION ALL SELECT g + 1 FROM s WHERE g < {hi}) SELECT g FROM s)"


def fill(engine: sa.Engine, expired: int, recent: int, held: int, chunk: int) -> list[str]:
    """Load the reads; returns the ids under the active hold."""
    d = engine.dialect.name
    now = datetime.now(timezone.utc)
    uuid = "gen_random_uuid()::text" if d == "postgresql" else "lower(hex(randomblob(16)))"
    jpeg = f"'\\x{JPEG_HEX}'::bytea" if d == "postgresql" else f"x'{JPEG_HEX}'"
    rnd = "random()" if d == "postgresql" else "(abs(random()) / 9223372036854775807.0)"
    json_empty, json_box = ("'[]'::jsonb", "'[0,0,0,0]'::jsonb") if d == "postgresql" else ("'[]'", "'[0,0,0,0]'")

    def ts(start: datetime, span_s: int) -> str:
        if d == "postgresql":
            return f"timestamptz '{start.isoformat()}' + ({rnd} * {span_s}) * interval '1 second'"
        return f"strftime('%Y-%m-%d %H:%M:%f000', '{start:%Y-%m-%d %H:%M:%S}', '+' || CAST({rnd} * {span_s} AS INTEGER) || ' seconds')"

    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO units (unit_id, site, public_key, status, enrolled_at) "
                             "VALUES ('unit-0', 'site-0', '-', 'active', CURRENT_TIMESTAMP)")
    t0 = time.perf_counter()
    for label, count, start, span in (("expired", expired, now - timedelta(days=7 * 365), 365 * 86400),
                                      ("recent", recent, now - timedelta(days=365), 360 * 86400)):
        for lo in range(0, count, chunk):
            hi = min(count, lo + chunk) - 1
            with engine.begin() as conn:
                conn.exec_driver_sql(
                    "INSERT INTO reads (read_id, unit_id, site, lane, direction, captured_at, plate, region, "
                    "confidence, candidates, box, model, trigger, schema_version, received_at) "
                    f"SELECT {uuid}, 'unit-0', 'site-0', '1', 'in', {ts(start, span)}, '7ABC' || g, 'us-ca', 0.9, "
                    f"{json_empty}, {json_box}, '{{}}', '{{}}', 1, CURRENT_TIMESTAMP FROM {series(d, lo, hi)}")
            log(f"{label}: {hi + 1:,} reads")
    with engine.begin() as conn:                 # received when captured: retention counts from receipt
        conn.exec_driver_sql("UPDATE reads SET received_at = captured_at")
    with engine.begin() as conn:
        conn.exec_driver_sql(f"INSERT INTO read_images (read_id, kind, jpeg) SELECT read_id, 'crop', {jpeg} FROM reads")
        cutoff = retention.cutoff_for(Settings(), now)
        old = sa.text("SELECT read_id FROM reads WHERE received_at < :c ORDER BY read_id LIMIT :n")
        ids = list(conn.execute(old, {"c": cutoff, "n": 2 * held}).scalars())
        keep, loose = ids[:held], ids[held:]
        for case, chosen, released in (("BENCH-HELD", keep, None), ("BENCH-RELEASED", loose, now)):
            hold_id = conn.execute(sa.text(
                "INSERT INTO legal_holds (case_number, reason, placed_by, placed_at, released_by, released_at) "
                "VALUES (:c, 'benchmark', 'bench', :now, :rb, :ra) RETURNING id"),
                {"c": case, "now": now, "rb": "bench" if released else None, "ra": released}).scalar_one()
            conn.execute(sa.text("INSERT INTO legal_hold_reads (hold_id, read_id) VALUES (:h, :r)"),
                         [{"h": hold_id, "r": r} for r in chosen])
        conn.execute(sa.text("INSERT INTO alerts (read_id, pattern, category, plate, site, captured_at, raised_at, "
                             "status) SELECT read_id, '7ABC*', 'wanted', plate, site, captured_at, captured_at, "
                             "'unverified' FROM reads WHERE plate LIKE :p"), {"p": "%00"})
        conn.exec_driver_sql("ANALYZE")
    log(f"loaded in {time.perf_counter() - t0:.0f} s")
    return keep


def count(engine: sa.Engine, sql: str, **params) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).scalar_one()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--backend", choices=["postgresql", "sqlite"], default="postgresql")
    p.add_argument("--expired", type=int, default=1_000_000)
    p.add_argument("--recent", type=int, default=100_000)
    p.add_argument("--held", type=int, default=1000, help="expired reads under an active hold (as many released)")
    p.add_argument("--batch", type=int, default=retention.BATCH, help="reads per purge transaction")
    p.add_argument("--chunk", type=int, default=250_000)
    p.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = p.parse_args()
    admin, name, tmp = None, None, None
    if args.backend == "postgresql":
        name = f"alpr_bench_retention_{secrets.token_hex(4)}"
        admin = sa.create_engine(db.normalise_url(args.pg_url), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        url = args.pg_url.rsplit("/", 1)[0] + "/" + name
    else:
        tmp = tempfile.TemporaryDirectory(prefix="bench-retention-")
        url = db.sqlite_url(Path(tmp.name) / "central.db")
    engine = db.make_engine(url, pool_size=2)
    try:
        db.upgrade(engine)
        held = fill(engine, args.expired, args.recent, args.held, args.chunk)
        cutoff = retention.cutoff_for(Settings())
        due = count(engine, "SELECT count(*) FROM reads WHERE received_at < :c", c=cutoff) - len(held)
        images_due = due                                  # one crop per read
        t0 = time.perf_counter()
        run = retention.run(engine, Settings(), WHO, batch=args.batch)
        seconds = time.perf_counter() - t0
        left_held = count(engine, "SELECT count(*) FROM legal_hold_reads l JOIN reads r ON r.read_id = l.read_id "
                                  "JOIN legal_holds h ON h.id = l.hold_id WHERE h.released_at IS NULL")
        left_expired = count(engine, "SELECT count(*) FROM reads WHERE received_at < :c", c=cutoff)
        left_recent = count(engine, "SELECT count(*) FROM reads WHERE received_at >= :c", c=cutoff)
        orphans = count(engine, "SELECT count(*) FROM read_images i WHERE NOT EXISTS "
                                "(SELECT 1 FROM reads r WHERE r.read_id = i.read_id)")
        logged = audit.entries(engine, action="retention_run")
        checks = {"held_reads_survive": left_held == len(held) and left_expired == len(held),
                  "recent_reads_survive": left_recent == args.recent,
                  "purged_as_counted": run["reads_purged"] == due and run["images_purged"] == images_due,
                  "no_orphan_images": orphans == 0,
                  "run_logged": len(logged) == 1 and logged[0]["result_count"] == due,
                  "audit_chain_ok": audit.verify(engine).ok}
        print(json.dumps({"backend": args.backend, "expired_reads": args.expired, "held": len(held),
                          "released_hold_reads": args.held, "recent": args.recent, "batch": args.batch,
                          "purge_seconds": round(seconds, 1), "reads_purged_per_s": round(run["reads_purged"] / seconds),
                          "run": {k: run[k] for k in ("reads_purged", "images_purged", "alerts_purged", "held_kept")},
                          "checks": checks, "ok": all(checks.values())}), flush=True)
        return 0 if all(checks.values()) else 1
    finally:
        engine.dispose()
        if admin is not None:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.dispose()
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    sys.exit(main())
