"""What an IP camera's 1080p H.264 stream costs the unit: frames per second delivered to the pipeline on one
core, the CPU that takes, and the latency from a frame leaving the camera to the frame in the pipeline.
Prints figures; asserts nothing.

    nice -n 10 .venv/bin/python benchmarks/bench_rtsp.py [--fps 15 25] [--seconds 20] [--bitrate 4096]
                                                         [--transport tcp|udp] [--clip hil/clips/01-day-one-lane]

The camera is `hil.rtsp_server` (gst-rtsp-server, a child process, on the other core where there is one):
a demo clip's frames scaled to 1920x1080, each with its number drawn along the top edge, encoded once by
x264 (baseline, zero-latency, a key frame a second: two seconds of frames, sent in a loop so the server
costs next to nothing) and sent at `--fps`; it notes the wall time each frame is sent. The reader is the unit's `rtsp` camera kind (`unit.sources.rtsp`: rtspsrc, depayload, the
decoder chosen as on a unit, conversion to RGB, the appsink keeping the newest two frames), in this
process pinned to one core, read as the unit's capture loop reads it. Each frame's number is read
back from its pixels, so latency is measured per frame on one clock: sent -> handed to the pipeline.
The CPU figure is this process's (all its GStreamer threads) over the measured window, in % of one
core; the server's own CPU (the encoder, a camera's job) is printed apart.
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hil.rtsp_server import CameraServer, read_mark  # noqa: E402


def proc_cpu_s(pid: int) -> float:
    """utime + stime of a process, seconds (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def self_cpu_s() -> tuple[float, float]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def run(fps: float, seconds: float, bitrate: int, transport: str, clip: Path, reader_cpu: int, server_cpu: int | None) -> None:
    from unit.sources.rtsp import Options, RtspSource
    with tempfile.TemporaryDirectory() as tmp:
        stamps_path = Path(tmp) / "stamps.txt"
        loop = int(round(2 * fps))                     # frames encoded once, sent in a 2 s loop
        server = CameraServer(clip, t0=time.time() + 1.0, cpu=server_cpu,
                              args=("--size", "1920x1080", "--fps", str(fps), "--preencode", str(loop), "--mark",
                                    "--stamps", str(stamps_path), "--bitrate", str(bitrate))).start(timeout=300)
        try:
            src = RtspSource(Options(url=server.url, transport=transport, latency_ms=200), stall_after_s=5.0,
                             clock=time.time)
            src.open()
            warm_end = time.time() + 2.0
            while time.time() < warm_end:              # the first key frame, the jitter buffer filling
                src.read(0.5)
            dropped0 = src.stats.dropped
            got: list[tuple[int, float, float]] = []   # (frame number, capture time stamped, handed out)
            cpu0, wall0, server0 = self_cpu_s(), time.time(), proc_cpu_s(server.proc.pid)
            end = wall0 + seconds
            size = None
            while time.time() < end:
                f = src.read(0.5)
                if f is None:
                    continue
                out = time.time()
                got.append((read_mark(f.image), f.t, out))
                size = f.image.shape
            cpu1, wall1, server1 = self_cpu_s(), time.time(), proc_cpu_s(server.proc.pid)
            decoder = next((e for e in src.description.split(" ! ") if "dec" in e), "?")
            dropped = src.stats.dropped - dropped0
            src.close()
        finally:
            server.stop()
        sent: dict[int, float] = {}
        for line in stamps_path.read_text().splitlines():
            k, t = line.split()
            sent[int(k)] = float(t)
    window = wall1 - wall0
    # a frame shows its number modulo the loop: it is the latest send of that number before it came out
    matched: dict[int, tuple[float, float]] = {}            # absolute number -> (stamped capture, handed out)
    unknown = 0
    for m, t, out in got:
        ks = [k for k, ts in sent.items() if k % loop == m and ts <= out]
        if not ks:
            unknown += 1
            continue
        matched[max(ks, key=lambda k: sent[k])] = (t, out)
    in_window = [k for k, t in sent.items() if wall0 <= t <= wall1 - 0.5]
    missing = len(set(in_window) - set(matched))
    lat = [(out - sent[k]) * 1000 for k, (_, out) in matched.items()]
    stamp = [(t - sent[k]) * 1000 for k, (t, _) in matched.items()]
    user, system = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
    print(f"\n1080p H.264 over RTSP ({transport}, loopback): x264 baseline {bitrate} kbit/s at {fps:g} fps sent; "
          f"decoder {decoder.split()[0]}; reader on CPU {reader_cpu}"
          + (f", camera server on CPU {server_cpu}" if server_cpu is not None else " (one CPU: the server shares it)"))
    print(f"  frames      {len(got)} handed to the pipeline in {window:.1f} s = {len(got) / window:.1f} fps "
          f"({size[1]}x{size[0]}); of {len(in_window)} sent, {missing} never reached the appsink (packets later "
          f"than the jitter buffer's latency are dropped, not queued), {dropped} pushed out unread by newer ones" + (f"; {unknown} with an unreadable number" if unknown else ""))
    print(f"  CPU         {100 * (user + system) / window:.1f} % of one core (user {100 * user / window:.1f}, "
          f"system {100 * system / window:.1f}); the camera server (sending frames encoded beforehand) "
          f"{100 * (server1 - server0) / window:.1f} %")
    if lat:
        print(f"  latency     sent -> in the pipeline: median {statistics.median(lat):.0f} ms, p95 {pct(lat, 0.95):.0f} ms, "
              f"max {max(lat):.0f} ms")
        print(f"  timestamps  capture time on the frame (buffer PTS on the wall clock): median {statistics.median(stamp):+.0f} ms "
              f"from the send, p95 {pct(stamp, 0.95):+.0f} ms")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--fps", type=float, nargs="+", default=[15.0, 25.0])
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--bitrate", type=int, default=4096, help="kbit/s (default 4096, a common 1080p camera setting)")
    p.add_argument("--transport", choices=("tcp", "udp"), default="tcp")
    p.add_argument("--clip", type=Path, default=ROOT / "hil" / "clips" / "01-day-one-lane")
    args = p.parse_args()
    cpus = sorted(os.sched_getaffinity(0))
    reader_cpu, server_cpu = cpus[0], (cpus[1] if len(cpus) > 1 else None)
    os.sched_setaffinity(0, {reader_cpu})          # before GStreamer starts a thread: all of them on one core
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (figures on a shared machine are noisy)")
    for fps in args.fps:
        run(fps, args.seconds, args.bitrate, args.transport, args.clip, reader_cpu, server_cpu)
    return 0


if __name__ == "__main__":
    sys.exit(main())
