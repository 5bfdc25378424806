"""Unit service figures: edge-to-sealed-read latency, sustained vehicles per minute, replay memory and
CPU, buffer write rate and bytes per read. Prints figures; asserts nothing.

    .venv/bin/python benchmarks/bench_unit.py [--vehicles 10] [--threads 1 2] [--skip latency,rate,memory,buffer]

Real parts throughout: MockFactory pins, the real Recogniser and models, real photos from
../shared/data/benchmark/endtoend/us scaled to 1920x1080, a real SQLite buffer, sealing to a real key.
Run it on the unit's hardware for numbers that mean anything for a gate; on a shared dev box it only
shows trends.
"""
from __future__ import annotations

import argparse
import base64
import glob
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey  # noqa: E402
from PIL import Image  # noqa: E402

from wire import seal  # noqa: E402

US = sorted(glob.glob(str(ROOT.parent / "shared/data/benchmark/endtoend/us/*.jpg")))   # shared/ beside the repo
EXAMPLE = ROOT / "unit" / "example-config.toml"


# photos whose plates are large and clear in frame, as a unit aimed at a gate sees them
CLEAR = ("us1.jpg", "wts-lg-000080.jpg", "wts-lg-000165.jpg", "us6.jpg", "wts-lg-000162.jpg")


def photos_1080p(n: int) -> list[np.ndarray]:
    out = []
    chosen = [p for p in US if Path(p).name in CLEAR] or US
    for p in chosen[:n]:
        with Image.open(p) as im:
            out.append(np.asarray(im.convert("RGB").resize((1920, 1080), Image.BILINEAR)))
    return out


def write_config(d: Path, threads: int, burst: int = 5, pre: int = 3) -> Path:
    key = X25519PrivateKey.generate()
    (d / "central-seal.pub").write_text(seal.sealing_public_b64(key.public_key()))
    text = (EXAMPLE.read_text().replace("/var/lib/alpr-unit/buffer.sqlite", str(d / "buf.sqlite"))
            .replace("threads = 1", f"threads = {threads}")
            .replace("burst_frames = 5", f"burst_frames = {burst}")
            .replace("pre_trigger_frames = 3", f"pre_trigger_frames = {pre}")
            .replace("roi = [0.0, 0.3, 0.5, 1.0]", "roi = [0.0, 0.0, 1.0, 1.0]")
            .replace("window_s = 10", "window_s = 0")
            .replace('level = "INFO"', 'level = "WARNING"'))
    (d / "unit.toml").write_text(text)
    return d / "unit.toml"


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def latency(threads: int, vehicles: int, images: list[np.ndarray]) -> None:
    """Live mode, real time: ring frames, edge, 5 frames at 10 fps, release; edge -> put() returned."""
    from gpiozero import Device
    from gpiozero.pins.mock import MockFactory

    from unit import logs
    from unit.config import load
    from unit.service import Unit
    from unit.sources.pushed import QueueSource

    logs.setup("WARNING", "text")
    with tempfile.TemporaryDirectory() as d:
        cfg = load(write_config(Path(d), threads))
        Device.pin_factory = MockFactory()
        src = QueueSource()
        unit = Unit(cfg, src, env={})
        done: dict[str, float] = {}
        lock = threading.Condition()

        def on_read(read, info):
            with lock:
                done[read.trigger["edge_at"]] = time.time()
                lock.notify_all()
        unit.stage.listeners.append(on_read)
        unit.start()
        pin = Device.pin_factory.pin(17)
        lat, after_last = [], []
        try:
            for v in range(vehicles):
                img = images[v % len(images)]
                for _ in range(cfg.camera.pre_trigger_frames):
                    src.push(img)
                    time.sleep(1 / cfg.camera.fps)
                src.join()
                edge = time.time()
                pin.drive_low()
                for i in range(cfg.camera.burst_frames):
                    if i:
                        time.sleep(1 / cfg.camera.burst_fps)
                    src.push(img)
                last = time.time()
                time.sleep(0.2)
                pin.drive_high()
                unit.wait_idle(60)
                from wire.times import utc_ms
                t = done.get(utc_ms(edge))
                if t is not None:
                    lat.append(t - edge)
                    after_last.append(t - last)
        finally:
            unit.stop()
            Device.pin_factory.reset()
        c = unit.health.counters
        if lat:
            print(f"  threads={threads}: edge->sealed read median {1000 * statistics.median(lat):.0f} ms, "
                  f"p95 {1000 * pct(lat, 0.95):.0f} ms (burst itself takes "
                  f"{1000 * (cfg.camera.burst_frames - 1) / cfg.camera.burst_fps:.0f} ms); after the last frame: median "
                  f"{1000 * statistics.median(after_last):.0f} ms, p95 {1000 * pct(after_last, 0.95):.0f} ms; "
                  f"{len(lat)}/{vehicles} vehicles read, frames dropped {c.get('frames_dropped_backlog', 0)}")
        else:
            print(f"  threads={threads}: no reads ({c})")


def rate(threads: int, vehicles: int, images: list[np.ndarray]) -> None:
    """Replay mode (no drops): how fast one lane can turn vehicles into sealed reads."""
    from gpiozero import Device
    from gpiozero.pins.mock import MockFactory

    from unit.config import load
    from unit.service import Unit
    from unit.sources.frames import ManualClock
    from unit.sources.pushed import QueueSource

    with tempfile.TemporaryDirectory() as d:
        cfg = load(write_config(Path(d), threads))
        Device.pin_factory = MockFactory()
        clock = ManualClock()
        src = QueueSource(clock)
        unit = Unit(cfg, src, clock=clock, live=False, env={})
        unit.start()
        pin = Device.pin_factory.pin(17)
        cpu0, t0 = time.process_time(), time.perf_counter()
        try:
            for v in range(vehicles):
                img = images[v % len(images)]
                for _ in range(cfg.camera.pre_trigger_frames):
                    src.push(img, clock.advance(1 / cfg.camera.fps))
                src.join()
                clock.advance(0.01)
                pin.drive_low()
                for _ in range(cfg.camera.burst_frames):
                    src.push(img, clock.advance(1 / cfg.camera.burst_fps))
                src.join()
                clock.advance(0.1)
                pin.drive_high()
            unit.wait_idle(600)
        finally:
            elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            unit.stop()
            Device.pin_factory.reset()
        frames = cfg.camera.pre_trigger_frames + cfg.camera.burst_frames
        print(f"  threads={threads}: {60 * vehicles / elapsed:.1f} vehicles/min sustained on one lane "
              f"({frames} frames each, {1000 * elapsed / vehicles:.0f} ms/vehicle wall, "
              f"{1000 * cpu / vehicles:.0f} ms CPU/vehicle); reads {unit.health.counters.get('reads', 0)}")


def memory(vehicles: int, images: list[np.ndarray]) -> None:
    """`alpr-unit replay` as its own process: RSS sampled from /proc, CPU from rusage."""
    with tempfile.TemporaryDirectory() as d:
        dd = Path(d)
        cfgp = write_config(dd, 1)
        stills = dd / "stills"
        stills.mkdir()
        for i in range(vehicles):
            Image.fromarray(images[i % len(images)]).save(stills / f"{i:04d}.jpg", quality=90)
        code = ("import sys; from unit.commands import replay; import argparse; p = argparse.ArgumentParser(); "
                "s = p.add_subparsers(); replay.add_parser(s).set_defaults(_run=replay.run); "
                "a = p.parse_args(sys.argv[1:]); sys.exit(a._run(a))")
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = subprocess.Popen([sys.executable, "-c", code, "replay", str(stills), "--config", str(cfgp)],
                                cwd=str(ROOT), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
        samples = []
        while proc.poll() is None:
            try:
                for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        samples.append(int(line.split()[1]) / 1024)
            except OSError:
                pass
            time.sleep(0.05)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        steady = samples[len(samples) // 2:] or samples
        print(f"  alpr-unit replay of {vehicles} stills at 1920x1080: RSS steady median "
              f"{statistics.median(steady):.0f} MB, peak {max(samples):.0f} MB (target <= 200 MB); "
              f"CPU {1000 * cpu / vehicles:.0f} ms per vehicle incl. start-up; exit {proc.returncode}")


def buffer_bench(n: int) -> None:
    from unit.buffer import SealedBuffer
    from wire.read import Read, new_read_id
    from wire.times import utc_ms

    pub = X25519PrivateKey.generate().public_key()
    crop = base64.b64encode(os.urandom(9000)).decode()         # a 9 kB JPEG plate crop
    with tempfile.TemporaryDirectory() as d:
        buf = SealedBuffer(Path(d) / "b.sqlite")
        t0 = time.perf_counter()
        for _ in range(n):
            r = Read(read_id=new_read_id(), unit_id="gate3-east", site="port-north", lane="in", direction="in",
                     captured_at=utc_ms(time.time()), plate="7ABC123", region="us-ca", confidence=0.9,
                     candidates=[{"plate": "7ABC123", "score": 0.9}, {"plate": "7A8C123", "score": 0.05}],
                     box=[100, 200, 300, 260], model={"detector": "x", "reader": "y"},
                     trigger={"sensor": "loop:GPIO17", "kind": "sensor", "edge_at": utc_ms(time.time())},
                     crop_jpeg_b64=crop)
            buf.put(r.read_id, r.captured_at, seal.seal(r.to_payload(), pub, r.read_id))
        dt = time.perf_counter() - t0
        st = buf.stats()
        buf.close()
        size = os.path.getsize(Path(d) / "b.sqlite")
        print(f"  {n / dt:.0f} sealed writes/s (seal + durable put, synchronous=FULL); "
              f"{st['bytes'] / n / 1024:.1f} kB stored per read with a 9 kB crop, {size / n / 1024:.1f} kB of file per read")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--vehicles", type=int, default=10)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--skip", default="", help="comma list of: latency, rate, memory, buffer")
    a = ap.parse_args()
    skip = set(filter(None, a.skip.split(",")))
    print(f"unit benchmark on {os.cpu_count()} CPUs, {a.vehicles} vehicles per figure")
    images = photos_1080p(5) if skip != {"latency", "rate", "memory"} else []
    if "latency" not in skip:
        print("sensor edge -> sealed read (5-frame burst at 1920x1080, live, real time):")
        for t in a.threads:
            latency(t, a.vehicles, images)
    if "rate" not in skip:
        print("sustained rate before a backlog builds (one lane, 3 ring + 5 burst frames per vehicle):")
        for t in a.threads:
            rate(t, a.vehicles, images)
    if "memory" not in skip:
        print("memory and CPU of `alpr-unit replay`:")
        memory(a.vehicles, images)
    if "buffer" not in skip:
        print("sealed buffer:")
        buffer_bench(max(50, a.vehicles * 20))


if __name__ == "__main__":
    main()
