"""Ingest benchmark: one unit draining its buffer, and many units pushing at once.

    .venv/bin/python benchmarks/bench_ingest.py                      # both back ends, default sizes
    .venv/bin/python benchmarks/bench_ingest.py --backend postgresql --workers 2 --drain 2000

Starts `alpr-central serve` as a child process on loopback (`hil.central.LocalCentral`, rate limit
raised so the limiter is not what is measured) against a fresh SQLite file or a throwaway PostgreSQL
database (dropped after); units enrol over HTTP with one-time tokens, as at provisioning.
1. drain: N reads sealed into a real unit.buffer.SealedBuffer, delivered by unit.uplink.Uplink.
2. fleet: U enrolled units, each in its own thread, POST pre-sealed signed batches as fast as
   answers come; total reads/s and per-request latency (p50, p95).
The clients run in this process and share the CPU with the server: on a small machine the figures
are a floor for the server alone. Sealing happens before the clock starts (a unit seals at capture).
"""
from __future__ import annotations

import argparse
import base64
import io
import json
import secrets
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from central import db  # noqa: E402
from hil.central import LocalCentral, enrol_unit  # noqa: E402
from unit.buffer import SealedBuffer  # noqa: E402
from unit.keys import load_ed25519_private  # noqa: E402
from unit.uplink import SignedClient, Uplink  # noqa: E402
from wire import batch as wire_batch  # noqa: E402
from wire import paths, seal  # noqa: E402
from wire.read import Read  # noqa: E402
from wire.times import utc_ms  # noqa: E402


@dataclass
class BenchUnit:
    unit_id: str
    site: str
    key: Ed25519PrivateKey
    sealing_key: X25519PublicKey


def _crop_jpeg() -> str:
    out = io.BytesIO()
    Image.new("RGB", (48, 16), (200, 200, 40)).save(out, "JPEG", quality=70)
    return base64.b64encode(out.getvalue()).decode("ascii")


CROP = _crop_jpeg()


def enrol(central: LocalCentral, unit_id: str, folder: Path) -> BenchUnit:
    e = enrol_unit(central.url, central.token("bench"), unit_id, folder)
    return BenchUnit(e.unit_id, e.site, load_ed25519_private(e.key_path), seal.load_sealing_public(e.sealing_public_key))


def sealed_read(unit: BenchUnit, plate: str = "7ABC123") -> tuple[str, str, dict[str, Any]]:
    """(read_id, captured_at, envelope): a schema-v1 read sealed as a unit seals it at capture."""
    now = utc_ms(time.time())
    read = Read(read_id=str(uuid.uuid4()), unit_id=unit.unit_id, site=unit.site, lane="1", direction="in",
                captured_at=now, plate=plate, region="us-ca", confidence=0.93,
                candidates=[{"plate": plate, "score": 0.93}], box=[10, 20, 110, 50],
                model={"detector": "d1", "reader": "r1"}, trigger={"sensor": "loop-1", "edge_at": now},
                crop_jpeg_b64=CROP)
    return read.read_id, now, seal.seal(read.to_payload(), unit.sealing_key, read.read_id)


def batch_body(reads: list[tuple[str, str, dict[str, Any]]]) -> bytes:
    return json.dumps(wire_batch.request(wire_batch.item(r, c, e) for r, c, e in reads)).encode()


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def drain(central: LocalCentral, n: int, batch: int, tmp: Path) -> dict:
    unit = enrol(central, "drain-unit", tmp / "identity")
    buffer = SealedBuffer(tmp / "drain-buffer.sqlite", max_bytes=2 * 1024 ** 3)
    t0 = time.perf_counter()
    for _ in range(n):
        buffer.put(*sealed_read(unit))
    fill_s = time.perf_counter() - t0
    uplink = Uplink(central.url, unit.unit_id, unit.key, buffer, batch_size=batch, backoff_base_s=0.1,
                    backoff_cap_s=1.0)
    t0 = time.perf_counter()
    uplink.run(threading.Event(), until_empty=True)
    wall = time.perf_counter() - t0
    stats = buffer.stats()
    buffer.close()
    assert stats["depth"] == 0 and stats["sent"] == n, stats
    return {"reads": n, "batch": batch, "seconds": round(wall, 2), "reads_per_s": round(n / wall),
            "buffer_fill_reads_per_s": round(n / fill_s)}


def fleet(central: LocalCentral, engine: sa.Engine, units: int, per_unit: int, batch: int, tmp: Path) -> dict:
    enrolled = [enrol(central, f"fleet-{i:02d}", tmp / "identity") for i in range(units)]
    bodies = {u.unit_id: [batch_body([sealed_read(u) for _ in range(batch)]) for _ in range(per_unit // batch)]
              for u in enrolled}
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(units + 1)

    def push(u) -> None:
        client = SignedClient(central.url, u.unit_id, u.key, requests.Session(), timeout=(5, 120))
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
    assert store_count(engine) >= total
    return {"units": units, "reads": total, "batch": batch, "seconds": round(wall, 2),
            "reads_per_s": round(total / wall), "requests": len(latencies),
            "latency_p50_ms": round(statistics.median(latencies) * 1000), "latency_p95_ms": round(pct(latencies, 95) * 1000)}


def store_count(engine: sa.Engine) -> int:
    with engine.connect() as conn:
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
    central = LocalCentral(tmp / "home", db=url, serve_args=("--rate", "100000", "--burst", "100000",
                                                             "--workers", str(args.workers)))
    try:
        central.start()
        engine = db.make_engine(url)
        try:
            result = {"backend": backend, "server_workers": args.workers}
            if args.drain:
                result["drain"] = drain(central, args.drain, args.batch, tmp)
            if args.units:
                result["fleet"] = fleet(central, engine, args.units, args.per_unit, args.batch, tmp)
        finally:
            central.stop()
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
