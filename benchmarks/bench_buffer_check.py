"""What the buffer's integrity check and a salvage cost: the time to open a buffer with `quick_check`, and
to carry a damaged one over (`unit.salvage`), for buffers of a given size. Prints figures; asserts nothing.

    .venv/bin/python benchmarks/bench_buffer_check.py [--mb 64 256 512] [--read-kb 3]

Real sealed reads (sealed to a fresh key) in a real SQLite file; one page in the middle scribbled for the
salvage. The file is built in one transaction per thousand reads (the unit writes one at a time; the file
is the same). Run it on the unit's storage for figures that mean anything there: an SD card reads far
slower than a server's disk, and the check reads the whole file. The page cache is dropped before each
timing where the OS lets us (root: /proc/sys/vm/drop_caches), else the figures are for a warm cache.
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey  # noqa: E402

from unit import salvage  # noqa: E402
from unit.buffer import PENDING, SealedBuffer, _pack  # noqa: E402
from wire import seal  # noqa: E402
from wire.read import new_read_id  # noqa: E402
from wire.times import utc_ms  # noqa: E402


def build(path: Path, mb: float, read_kb: float) -> int:
    key = X25519PrivateKey.generate().public_key()
    buf = SealedBuffer(path, max_bytes=int(mb * 2**20) * 2)
    n = int(mb * 1024 / read_kb)
    payload = {"crop": os.urandom(int(read_kb * 1024 * 0.7)).hex()[: int(read_kb * 1024 * 0.7)]}
    c = buf._conn
    for start in range(0, n, 1000):
        c.execute("BEGIN")
        for _ in range(min(1000, n - start)):
            rid = new_read_id()
            body, ct = _pack(seal.seal({**payload, "read_id": rid}, key, rid))
            c.execute("INSERT INTO reads (read_id, captured_at, envelope, ct, size, attempts, state, stored_at,"
                      " held_at) VALUES (?, ?, ?, ?, ?, 0, ?, ?, 0)",
                      (rid, utc_ms(time.time()), body, ct, len(body) + len(ct or b""), PENDING, time.time()))
        c.execute("INSERT INTO counters (name, value) VALUES ('stored', ?) "
                  "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value", (min(1000, n - start),))
        c.execute("COMMIT")
    buf.close()
    return n


def drop_caches() -> str:
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return "cold"
    except OSError:
        return "warm"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=float, nargs="+", default=[64, 256, 512])
    ap.add_argument("--read-kb", type=float, default=3.0, help="sealed size of one read (a crop: 2-4 KB)")
    args = ap.parse_args()
    print(f"{'buffer':>8} {'reads':>8} {'open+check':>11} {'open, no check':>15} {'salvage':>9} {'carried':>8} "
          f"{'lost':>5}  cache")
    for mb in args.mb:
        with tempfile.TemporaryDirectory(dir=ROOT.parent if os.access(ROOT.parent, os.W_OK) else None) as d:
            path = Path(d) / "b.sqlite"
            n = build(path, mb, args.read_kb)
            cache = drop_caches()
            t = time.perf_counter()
            SealedBuffer(path, check=True).close()
            checked = time.perf_counter() - t
            drop_caches()
            t = time.perf_counter()
            SealedBuffer(path).close()
            plain = time.perf_counter() - t
            size = path.stat().st_size
            with open(path, "r+b") as f:
                f.seek((size // 4096 // 2) * 4096)
                f.write(random.Random(1).randbytes(4096))
            drop_caches()
            t = time.perf_counter()
            new, rec = salvage.recover(path, lambda: SealedBuffer(path))
            took = time.perf_counter() - t
            new.close()
            print(f"{size / 2**20:7.0f}M {n:8d} {checked:10.2f}s {plain:14.2f}s {took:8.2f}s {rec.salvaged:8d} "
                  f"{rec.lost if rec.lost is not None else '?':>5}  {cache}")


if __name__ == "__main__":
    main()
