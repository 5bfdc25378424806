"""Ingest benchmark: one unit draining its buffer, and many units pushing at once.

    .venv/bin/python benchmarks/bench_ingest.py                      # both back ends, default sizes
    .venv/bin/python benchmarks/bench_ingest.py --backend postgresql --workers 2 --drain 2000

Starts `alpr-central serve` as a child process on loopback (rate limit raised so the limiter is not
what is measured) against a fresh SQLite file or a throwaway PostgreSQL database (dropped after).
1. drain: N reads sealed into a real unit.buffer.SealedBuffer, delivered by unit.uplink.Uplink.
2. fleet: U enrolled units, each in its own thread, POST pre-sealed signed batches as fast as
   answers come; total reads/s and per-request latency (p50, p95).
The clients run in this process and share the CPU with the server: on a small machine the figures
are a floor for the server alone. Sealing happens before the clock starts (a unit seals at capture).
"""
from __future__ import annotations

import argparse
import json
import secrets
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from central import cli, db  # noqa: E402
from central_fixtures import ServeProcess, batch_body, enrol_unit, free_port, make_read, Store  # noqa: E402
from central.keys import load_keys  # noqa: E402
from unit.buffer import SealedBuffer  # noqa: E402
from unit.uplink import SignedClient, Uplink  # noqa: E402
from wire import paths  # noqa: E402


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def drain(store: Store, url: str, n: int, batch: int, tmp: Path) -> dict:
    unit = enrol_unit(url, store, "drain-unit", "bench")
    buffer = SealedBuffer(tmp / "drain-buffer.sqlite", max_bytes=2 * 1024 ** 3)
    t0 = time.perf_counter()
    for _ in range(n):
        buffer.put(*make_read(unit))
    fill_s = time.perf_counter() - t0
    uplink = Uplink(url, unit.unit_id, unit.key, buffer, batch_size=batch, backoff_base_s=0.1, backoff_cap_s=1.0)
    t0 = time.perf_counter()
    uplink.run(threading.Event(), until_empty=True)
    wall = time.perf_counter() - t0
    stats = buffer.stats()
    buffer.close()
    assert stats["depth"] == 0 and stats["sent"] == n, stats
    return {"reads": n, "batch": batch, "seconds": round(wall, 2), "reads_per_s": round(n / wall),
            "buffer_fill_reads_per_s": round(n / fill_s)}


def fleet(store: Store, url: str, units: int, per_unit: int, batch: int) -> dict:
    enrolled = [enrol_unit(url, store, f"fleet-{i:02d}", "bench") for i in range(units)]
    bodies = {u.unit_id: [batch_body([make_read(u) for _ in range(batch)]) for _ in range(per_unit // batch)]
              for u in enrolled}
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(units + 1)

    def push(u) -> None:
        client = SignedClient(url, u.unit_id, u.key, requests.Session(), timeout=(5, 120))
        start.wait()
        for body in bodies[u.unit_id]:
            t = time.perf_counter()
            r = client.request("POST", paths.READS, body, {"Content-Type": "application/json"})
            dt = time.perf_counter() - t
            ok = r.status_code == 200 and all(x["status"] == "stored" for x in r.json()["results"])
            with lock:
                latencies.append(dt)
                if not ok:
                    failures.append(f"{u.unit_id}: {r.status_code} {r.text[:100]}")

    threads = [threading.Thread(target=push, args=(u,)) for u in enrolled]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    total = units * (per_unit // batch) * batch
    assert not failures, failures[:3]
    assert store_count(store) >= total
    return {"units": units, "reads": total, "batch": batch, "seconds": round(wall, 2),
            "reads_per_s": round(total / wall), "requests": len(latencies),
            "latency_p50_ms": round(statistics.median(latencies) * 1000), "latency_p95_ms": round(pct(latencies, 95) * 1000)}


def store_count(store: Store) -> int:
    with store.engine.connect() as conn:
        return conn.execute(sa.text("SELECT count(*) FROM reads")).scalar_one()


def run_backend(backend: str, args: argparse.Namespace) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-{backend}-"))
    admin, name = None, None
    if backend == "sqlite":
        url = db.sqlite_url(tmp / "central.db")
    else:
        name = f"alpr_bench_{secrets.token_hex(4)}"
        admin = sa.create_engine(db.normalise_url(args.pg_url), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        url = args.pg_url.rsplit("/", 1)[0] + "/" + name
    home = tmp / "home"
    try:
        assert cli.main(["init", "--home", str(home), "--db", url]) == 0
        engine = db.make_engine(url)
        store = Store(backend, url, home, engine, load_keys(home / "keys"))
        server = ServeProcess(store, free_port(), "--rate", "100000", "--burst", "100000",
                              "--workers", str(args.workers))
        try:
            result = {"backend": backend, "server_workers": args.workers}
            if args.drain:
                result["drain"] = drain(store, server.url, args.drain, args.batch, tmp)
            if args.units:
                result["fleet"] = fleet(store, server.url, args.units, args.per_unit, args.batch)
        finally:
            server.kill()
            engine.dispose()
        return result
    finally:
        if admin is not None:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.dispose()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    p.add_argument("--drain", type=int, default=10_000, help="reads one unit drains (0: skip)")
    p.add_argument("--units", type=int, default=20, help="units pushing at once (0: skip)")
    p.add_argument("--per-unit", type=int, default=500, help="reads each fleet unit pushes")
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--workers", type=int, default=1, help="server worker processes")
    p.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = p.parse_args()
    for backend in (["sqlite", "postgresql"] if args.backend == "both" else [args.backend]):
        print(json.dumps(run_backend(backend, args)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
