"""Console benchmark on PostgreSQL: search results pages, the alerts page, and a hot-list hit from
ingest to an open alerts page while 20 units push.

    .venv/bin/python benchmarks/bench_console.py                     # makes and fills 10 M reads first
    .venv/bin/python benchmarks/bench_console.py --db postgresql://postgres@127.0.0.1:5432/NAME   # reuse one

The reads are made by `bench_search.fill` (server-side generate_series, 5 years, 20 sites, one read
in 100 with a crop): `bench_search.py --keep` leaves a filled database that both benchmarks can
reuse with --db. Then `alpr-central serve` runs as its own process on loopback against it, an
officer logs in through the console's login form, and the figures are taken over real HTTP with the
session cookie, as a browser sends it:
1. search results page: GET /search?run=1&... for exact plates and partial patterns drawn from the
   table (prefix 7AB?12*, inner *BC12*, one unknown 7A?C123), and the exact plates again with
   "Similar" ticked; the whole page (query, audit entry, HTML with crops) timed to its last byte;
   p50/p95 per kind, target p95 <= 300 ms (similar: 500 ms; bench_similar.py has the worst cases);
2. alerts page: GET /alerts with --alerts alerts in the table, time to the first byte, target <= 200 ms;
3. live alert: 20 enrolled units each POST a signed batch of sealed reads every second; now and then
   one read carries a plate on the hot list; an open alerts stream (GET /alerts/stream, what the
   page's EventSource reads) receives the alert. Latency = from just before the batch is sent to the
   event arriving; target p95 <= 2 s.
The clients share this machine's CPU with the server and PostgreSQL: the figures are a floor, and
each line gives the machine's load average when it was taken.
Prints one JSON line per figure; the benchmark's own rows (users, entries, alerts, the pushed reads)
stay in the database (drop it when done, or use a throwaway one).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import sys
import tempfile
import threading
import time
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import urlencode

import requests
import sqlalchemy as sa

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import bench_ingest  # noqa: E402
import bench_search  # noqa: E402
from central import audit, db, hotlist, training, users  # noqa: E402
from central.config import Settings, save_settings  # noqa: E402
from hil.central import LocalCentral  # noqa: E402
from unit.uplink import SignedClient  # noqa: E402
from wire import paths  # noqa: E402

WHO = audit.system("bench-console")
RUN = "".join(random.SystemRandom().choice("ABCDEFGHJKLMNPRSTUVWXYZ") for _ in range(2))   # this run's plates
PASSWORD = "bench console password"
SETTINGS = Settings(argon2_time_cost=1, argon2_memory_kib=1024, argon2_parallelism=1)


def figure(name: str, times: list[float], target_ms: float, **extra) -> dict:
    doc = {"figure": name, "n": len(times), "load_avg_1m": round(os.getloadavg()[0], 1), "p50_ms": round(statistics.median(times) * 1000, 1),
           "p95_ms": round(bench_ingest.pct(times, 95) * 1000, 1), "max_ms": round(max(times) * 1000, 1),
           "target_p95_ms": target_ms, "met": bench_ingest.pct(times, 95) * 1000 <= target_ms, **extra}
    print(json.dumps(doc), flush=True)
    return doc


def officer_session(url: str) -> requests.Session:
    """Log in through the console's form (login CSRF cookie and field), as a browser does."""
    s = requests.Session()
    page = s.get(url + "/login", timeout=10)
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    r = s.post(url + "/login", data={"csrf": token, "username": "bench.officer", "password": PASSWORD, "next": "/"},
               timeout=30, allow_redirects=False)
    assert r.status_code == 303 and "alpr_session" in s.cookies, r.text[:300]
    return s


SIMILAR = "similar (exact plate, Similar ticked)"


def search_pages(url: str, session: requests.Session, kinds: dict[str, list[str]], limit: int) -> list[dict]:
    out = []
    for kind, pats in kinds.items():
        extra = {"similar": 1} if kind == SIMILAR else {}
        session.get(url + "/search?" + urlencode({"run": 1, "plate": pats[0], "purpose": "criminal_investigation",
                                                  "case_number": "BENCH-1", "limit": limit, **extra}), timeout=60)  # warm
        times, rows = [], []
        for p in pats:
            q = urlencode({"run": 1, "plate": p, "purpose": "criminal_investigation", "case_number": "BENCH-1",
                           "limit": limit, **extra})
            t = time.perf_counter()
            r = session.get(url + "/search?" + q, timeout=60)
            times.append(time.perf_counter() - t)
            assert r.status_code == 200, r.text[:500]
            rows.append(r.text.count('<a class="plate"'))
        out.append(figure(f"search results page, {kind}", times, 500 if extra else 300, mean_rows=round(statistics.mean(rows), 1),
                          example=pats[0], page_size=limit))
    return out


def add_alerts(engine: sa.Engine, n: int) -> None:
    """n alerts on existing reads (as ingest would have raised them), under one entry."""
    entry = hotlist.add(engine, f"9Z{RUN}999", reason="stolen_vehicle", purpose="stolen_vehicle", case_number="BENCH-A",
                        source="bench", by=WHO)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO alerts (read_id, hotlist_entry_id, pattern, category, note, purpose, case_number, plate, site, "
            "unit_id, lane, direction, captured_at, raised_at, status) "
            f"SELECT read_id, {entry['id']}, '{entry['pattern']}', 'stolen_vehicle', 'bench', 'stolen_vehicle', 'BENCH-A', plate, "
            "site, unit_id, lane, direction, captured_at, captured_at, "
            "CASE WHEN random() < 0.5 THEN 'unverified' ELSE 'confirmed' END "
            f"FROM reads TABLESAMPLE SYSTEM (1) LIMIT {n}")


def alerts_first_byte(url: str, session: requests.Session, n: int) -> dict:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        with session.get(url + "/alerts", stream=True, timeout=60) as r:
            next(r.iter_content(1))
            times.append(time.perf_counter() - t)
            assert r.status_code == 200
    return figure("alerts page, first byte", times, 200)


def live_alerts(central: LocalCentral, engine: sa.Engine, session: requests.Session, n_units: int, hits: int,
                batch: int, tmp: Path) -> dict:
    fleet = [bench_ingest.enrol(central, f"bench-{RUN.lower()}-{i:02d}", tmp) for i in range(n_units)]
    hot = [f"8H{RUN}{i:03d}" for i in range(hits)]
    for p in hot:
        hotlist.add(engine, p, reason="wanted", purpose="wanted_vehicle", case_number="BENCH-L", source="bench", by=WHO)
    sent: dict[str, float] = {}
    seen: dict[str, float] = {}
    stop = threading.Event()
    errors: list[str] = []
    ready = threading.Event()

    def listen() -> None:
        try:
            with session.get(central.url + "/alerts/stream", stream=True, timeout=(5, 120)) as r:
                ready.set()
                for line in r.iter_lines(decode_unicode=True):
                    if line and line.startswith("data: "):
                        doc = json.loads(line[6:])
                        seen.setdefault(doc.get("plate", ""), time.time())
                    if stop.is_set() and len(seen) >= len(sent):
                        return
        except requests.RequestException:       # the store stopped under an open stream: the run is over
            return

    def push(i: int, unit: bench_ingest.BenchUnit) -> None:
        client = SignedClient(central.url, unit.unit_id, unit.key)
        rng = random.Random(i)
        k = 0
        next_at = time.monotonic() + rng.random()
        while not stop.is_set():
            reads = [bench_ingest.sealed_read(unit, f"{rng.randint(1, 9)}ABC{rng.randint(0, 999):03d}") for _ in range(batch)]
            plate = None
            if i == k % n_units and hot:                     # units take turns carrying a hot plate
                plate = hot.pop()
                reads[0] = bench_ingest.sealed_read(unit, plate)
            body = bench_ingest.batch_body(reads)
            if plate:
                sent[plate] = time.time()
            r = client.request("POST", paths.READS, body, {"Content-Type": "application/json"})
            if r.status_code != 200:
                errors.append(f"{r.status_code} {r.text[:200]}")
            k += 1
            next_at += 1.0
            time.sleep(max(0.0, next_at - time.monotonic()))

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    ready.wait(10)
    pushers = [threading.Thread(target=push, args=(i, u), daemon=True) for i, u in enumerate(fleet)]
    t0 = time.time()
    for p in pushers:
        p.start()
    deadline = time.time() + hits * 2 + 60
    while (hot or len(seen) < len(sent)) and time.time() < deadline:
        time.sleep(0.2)
    stop.set()
    for p in pushers:
        p.join(10)
    listener.join(5)
    lat = [seen[p] - sent[p] for p in sent if p in seen]
    missing = sorted(set(sent) - set(seen))
    return figure("hot-list hit, ingest to open alerts page", lat, 2000, units=n_units, batch_reads=batch,
                  hits_sent=len(sent), hits_missing=len(missing), push_errors=len(errors),
                  seconds=round(time.time() - t0, 1))


def run(args: argparse.Namespace, url: str) -> None:
    engine = db.make_engine(url, pool_size=2)
    tmp = Path(tempfile.mkdtemp(prefix="bench-console-"))
    central = None
    try:
        total, _ = bench_search.filled(engine, args)
        if not any(u["username"] == "bench.officer" for u in users.list_users(engine)):
            users.add(engine, SETTINGS, username="bench.officer", full_name="Bench Officer", job_title="officer",
                      agency="benchmark", role="officer", password=PASSWORD, by=WHO)
            training.record(engine, "bench.officer", "ALPR course", date.today() - timedelta(days=1),
                            date.today() + timedelta(days=300), WHO)
        home = tmp / "central"
        central = LocalCentral(home, db=url, log=tmp / "central.log",
                               serve_args=("--workers", str(args.workers), "--rate", "1000", "--burst", "2000"))
        central.init()
        save_settings(home, SETTINGS)
        central.start()
        session = officer_session(central.url)
        kinds = bench_search.patterns(engine, args.queries, random.Random(args.seed))
        kinds[SIMILAR] = list(kinds["exact"])
        results = search_pages(central.url, session, kinds, args.page)
        add_alerts(engine, args.alerts)
        results.append(alerts_first_byte(central.url, session, args.alerts_loads))
        results.append(live_alerts(central, engine, officer_session(central.url), args.units, args.hits, args.batch, tmp))
        print(json.dumps({"reads": total, "met": all(r["met"] for r in results), "workers": args.workers}), flush=True)
    finally:
        if central is not None:
            central.stop()
        engine.dispose()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    bench_search.add_database_options(p)
    p.add_argument("--queries", type=int, default=30, help="search pages per kind")
    p.add_argument("--page", type=int, default=50, help="results per page")
    p.add_argument("--alerts", type=int, default=5000, help="alerts in the table for the alerts page")
    p.add_argument("--alerts-loads", type=int, default=30)
    p.add_argument("--units", type=int, default=20)
    p.add_argument("--hits", type=int, default=40, help="hot-list hits pushed during the live test")
    p.add_argument("--batch", type=int, default=10, help="reads per unit per second")
    p.add_argument("--workers", type=int, default=2, help="alpr-central serve --workers")
    args = p.parse_args()
    with bench_search.database(args.pg_url, args.db, args.keep, "alpr_bench_console") as url:
        run(args, url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
