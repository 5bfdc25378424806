"""Similar-plate search over many reads on PostgreSQL: p50/p95 of exact and similar searches
(target p95 <= 500 ms for similar at 10 M reads).

    .venv/bin/python benchmarks/bench_similar.py                       # makes and fills 10 M reads first
    .venv/bin/python benchmarks/bench_similar.py --db postgresql://postgres@127.0.0.1:5432/NAME   # reuse one

The reads are made by `bench_search.fill` (the same loader as bench_search and bench_console;
`bench_search.py --keep` leaves a database all three can reuse with --db). Plates are drawn from the
table, and each is searched twice through `central.search.search`, the code `POST /v1/search` and the
console run (query, crop join, audit entry in the same transaction): exact, then with `similar`. The
figures say how many look-alike spellings each plate had and how many plates were past
`similar_plates.MAX_VARIANTS` (those compare canonical forms instead of using the plate index),
split by that path; then plates made only of look-alike characters (the worst case), and plates
past MAX_VARIANTS with and without a time window. Run with the store's search timeout (--timeout-s, 10 s by default) so a search
the API would refuse as too broad is counted as refused, not timed.
Prints one JSON line per figure and the plan of one similar search (stderr).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import bench_search  # noqa: E402
from central import audit, db, search, similar_plates  # noqa: E402
from central.errors import ApiError  # noqa: E402

WHO = audit.Principal("bench", "benchmark")
# Plates made only of look-alike characters: the most spellings a 7-character plate can have (16,671
# for 1001010), and ten-character ones past MAX_VARIANTS, compared by folded form.
HEAVY = ("1001010", "8OB12S6", "QD0O1T2", "5SB8G0O", "IL1T0OD")
PAST_MAX = ("1O0D1IL8B5", "QD0O1T2ZS6")


def figure(name: str, times: list[float], **extra) -> dict:
    doc = {"figure": name, "n": len(times), "load_avg_1m": round(os.getloadavg()[0], 1)}
    if times:
        doc.update(p50_ms=round(statistics.median(times) * 1000, 1), p95_ms=round(bench_search.pct(times, 95) * 1000, 1),
                   max_ms=round(max(times) * 1000, 1))
    doc.update(extra)
    print(json.dumps(doc), flush=True)
    return doc


def sample_plates(engine: sa.Engine, count: int, rng: random.Random) -> list[str]:
    with engine.connect() as conn:
        plates = sorted(set(conn.exec_driver_sql(
            f"SELECT plate FROM reads TABLESAMPLE SYSTEM (0.1) REPEATABLE (462) LIMIT {count * 4}").scalars()))
    rng.shuffle(plates)
    return plates[:count]


def spellings(plate: str) -> int | None:
    try:
        return len(similar_plates.variants(plate))
    except similar_plates.TooMany:
        return None


def one(engine: sa.Engine, plate: str, similar: bool, limit: int, timeout_s: float,
        start: datetime | None = None) -> tuple[float, int | None]:
    q = search.Query(purpose="criminal_investigation", case_number="BENCH-S", plate=plate, limit=limit,
                     similar=similar, start=start)
    t = time.perf_counter()
    try:
        page = search.search(engine, WHO, q, timeout_s=timeout_s)
    except ApiError:
        return time.perf_counter() - t, None                       # refused as too broad
    return time.perf_counter() - t, page["count"]


def explain(engine: sa.Engine, plate: str) -> str:
    q = search.Query(purpose="criminal_investigation", case_number="BENCH-S", plate=plate, similar=True).checked()
    compiled = search._similar_page(q, engine.dialect.name).compile(engine)
    with engine.connect() as conn:
        return "\n".join(conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + str(compiled),
                                              compiled.params).scalars())


def run(args: argparse.Namespace, url: str) -> None:
    engine = db.make_engine(url, pool_size=2)
    try:
        total, _ = bench_search.filled(engine, args)
        plates = sample_plates(engine, args.queries, random.Random(args.seed))
        counts = {p: spellings(p) for p in plates}
        for p in plates[:3]:                                      # warm the cache as a running server is warm
            one(engine, p, True, args.limit, args.timeout_s)
        exact, similar_idx, similar_canon, rows, refused = [], [], [], [], 0
        for p in plates:
            t, _ = one(engine, p, False, args.limit, args.timeout_s)
            exact.append(t)
            t, n = one(engine, p, True, args.limit, args.timeout_s)
            if n is None:
                refused += 1
                continue
            (similar_idx if counts[p] is not None else similar_canon).append(t)
            rows.append(n)
        indexed = [c for c in counts.values() if c is not None]
        figure("exact plate", exact, example=plates[0])
        figure("similar plate, all", similar_idx + similar_canon, target_p95_ms=500,
               met=bool(similar_idx + similar_canon) and bench_search.pct(similar_idx + similar_canon, 95) <= 0.5,
               refused_too_broad=refused, mean_results=round(statistics.mean(rows), 1) if rows else 0,
               example=plates[0])
        figure("similar plate, by the plate index", similar_idx,
               spellings_p50=int(statistics.median(indexed)) if indexed else None,
               spellings_max=max(indexed) if indexed else None)
        figure("similar plate, canonical forms (past MAX_VARIANTS)", similar_canon,
               plates=sum(c is None for c in counts.values()), max_variants=similar_plates.MAX_VARIANTS)
        heavy = [one(engine, p, True, args.limit, args.timeout_s) for p in HEAVY for _ in range(args.heavy_repeats)]
        figure("similar plate, every character a look-alike", [t for t, n in heavy if n is not None],
               plates=list(HEAVY), spellings=[spellings(p) for p in HEAVY],
               refused_too_broad=sum(n is None for _, n in heavy))
        if args.window_days:
            since = datetime.now(timezone.utc) - timedelta(days=args.window_days)
            many = ([p for p in plates if counts[p] is None] + list(PAST_MAX))[:args.window_queries]
            times = [one(engine, p, True, args.limit, args.timeout_s, since)[0] for p in many]
            figure(f"similar plate past MAX_VARIANTS, {args.window_days}-day window", times, plates=many)
            bare = [one(engine, p, True, args.limit, args.timeout_s) for p in many[:1]]
            figure("similar plate past MAX_VARIANTS, no window", [t for t, _ in bare], plates=many[:1],
                   refused_too_broad=sum(n is None for _, n in bare))
        print(json.dumps({"reads": total, "queries": len(plates), "page": args.limit}), flush=True)
        print(explain(engine, plates[0]), file=sys.stderr)
    finally:
        engine.dispose()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    bench_search.add_database_options(p)
    p.add_argument("--queries", type=int, default=60, help="plates searched (each exact and similar)")
    p.add_argument("--limit", type=int, default=50, help="page size")
    p.add_argument("--timeout-s", type=float, default=10.0, help="the store's search_timeout_s")
    p.add_argument("--window-days", type=int, default=30, help="also time plates past MAX_VARIANTS with this window (0: skip)")
    p.add_argument("--window-queries", type=int, default=2)
    p.add_argument("--heavy-repeats", type=int, default=4, help="searches per all-look-alike plate")
    args = p.parse_args()
    with bench_search.database(args.pg_url, args.db, args.keep, "alpr_bench_similar") as url:
        run(args, url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
