"""Logins under an anonymous flood: the server's peak memory and a real officer's login time.

    .venv/bin/python benchmarks/bench_login.py                       # this checkout
    .venv/bin/python benchmarks/bench_login.py --repo /path/to/other/checkout   # the same, another version

Makes a throwaway home (SQLite) with `alpr-central init`, adds one officer with `users add`, and runs
`alpr-central serve` from --repo as its own process on loopback, with the shipped Argon2 costs (64 MiB,
3 passes, 4 lanes). Then `--clients` threads (default 48) send anonymous logins with wrong passwords
from 127.0.0.1 as fast as answers come, for `--seconds`, while the officer logs in with the right
password from 127.0.0.2 once a second. `--addresses N` spreads the anonymous clients over N loopback
addresses (as many sources would), where only the cap on concurrent hashing bounds them. Prints one JSON line: the server's peak resident memory
(VmHWM of the serve process), the officer's login times (each one's status, median and max), and how
the anonymous requests were answered (counts by status). The clients share the machine's CPU with the
server: the times are a ceiling for a server with the machine to itself.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests
from requests.adapters import HTTPAdapter

REPO = Path(__file__).resolve().parents[1]
PASSWORD = "correct horse battery staple"


class _From(HTTPAdapter):
    def __init__(self, address: str):
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args, **kw):
        kw["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kw)


def session_from(address: str) -> requests.Session:
    http = requests.Session()
    http.mount("http://", _From(address))
    return http


def cli(repo: Path, *argv: str, stdin: str | None = None) -> None:
    subprocess.run([sys.executable, "-m", "central.cli", *argv], cwd=repo, input=stdin, text=True, check=True,
                   env={**os.environ, "PYTHONPATH": str(repo)}, stdout=subprocess.DEVNULL)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", type=Path, default=REPO, help="the checkout whose alpr-central is measured")
    ap.add_argument("--clients", type=int, default=48)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--addresses", type=int, default=1,
                    help="spread the anonymous clients over this many loopback addresses (127.0.1.x)")
    args = ap.parse_args()
    repo = args.repo.resolve()
    home = Path(tempfile.mkdtemp(prefix="bench-login-"))
    cli(repo, "init", "--home", str(home))
    cli(repo, "users", "add", "ofc.real", "--name", "Real Officer", "--title", "officer", "--agency", "Bench PD",
        "--role", "officer", "--password-stdin", "--home", str(home), stdin=PASSWORD + "\n")
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1/auth/login"
    server = subprocess.Popen([sys.executable, "-m", "central.cli", "serve", "--home", str(home), "--port", str(port),
                               "--log-level", "error"], cwd=repo, env={**os.environ, "PYTHONPATH": str(repo)},
                              start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(url.replace("/v1/auth/login", "/policy"), timeout=1)
                break
            except requests.RequestException:
                if time.monotonic() > deadline:
                    raise SystemExit("alpr-central serve did not start")
                time.sleep(0.1)
        baseline_rss = peak_rss_mib(server.pid)
        stop = threading.Event()
        answered: collections.Counter[str] = collections.Counter()
        lock = threading.Lock()

        def anonymous(i: int) -> None:
            http = session_from("127.0.0.1" if args.addresses == 1 else f"127.0.1.{i % args.addresses + 1}")
            n = 0
            while not stop.is_set():
                n += 1
                try:
                    status = str(http.post(url, json={"username": f"guess{i}-{n % 7}", "password": "wrong password!"},
                                           timeout=60).status_code)
                except requests.RequestException as exc:
                    status = type(exc).__name__
                with lock:
                    answered[status] += 1

        threads = [threading.Thread(target=anonymous, args=(i,), daemon=True) for i in range(args.clients)]
        for t in threads:
            t.start()
        real: list[tuple[int, float]] = []
        end = time.monotonic() + args.seconds
        officer = session_from("127.0.0.2")
        while time.monotonic() < end:
            t0 = time.perf_counter()
            try:
                status = officer.post(url, json={"username": "ofc.real", "password": PASSWORD}, timeout=120).status_code
            except requests.RequestException:
                status = 0
            real.append((status, time.perf_counter() - t0))
            time.sleep(max(0.0, 1.0 - (time.perf_counter() - t0)))
        stop.set()
        for t in threads:
            t.join(70)
        times = [s for _, s in real]
        print(json.dumps({
            "repo": str(repo), "clients": args.clients, "addresses": args.addresses, "seconds": args.seconds,
            "server_peak_rss_mib": round(peak_rss_mib(server.pid), 1), "server_rss_at_start_mib": round(baseline_rss, 1),
            "real_logins": len(real), "real_login_statuses": dict(collections.Counter(str(s) for s, _ in real)),
            "real_login_s_median": round(statistics.median(times), 3), "real_login_s_max": round(max(times), 3),
            "anonymous_answers": dict(answered), "load_avg_1m": round(os.getloadavg()[0], 2)}))
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
