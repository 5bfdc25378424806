"""Health: what is working, told to systemd (sd_notify) and to `alpr-unit status` (a status file).

sd_notify is the whole of systemd's datagram protocol: "KEY=VALUE" lines sent to the unix socket named
in $NOTIFY_SOCKET ("@" means the abstract namespace). Outside systemd the variable is unset and nothing
happens. WATCHDOG=1 is sent only while the service's own loops make progress, so a hung thread gets the
service restarted, while a broken camera or model only degrades the state (no restart loop for a fault
that a restart cannot fix).
"""
from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any, Mapping


def sd_notify(message: str, env: Mapping[str, str] | None = None) -> bool:
    """Send one notification ("READY=1", "WATCHDOG=1", "STATUS=..."); False when not under systemd."""
    env = os.environ if env is None else env
    addr = env.get("NOTIFY_SOCKET", "")
    if not addr or addr[0] not in "/@":
        return False
    if addr[0] == "@":
        addr = "\0" + addr[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(addr)
            sock.sendall(message.encode("utf-8", "replace"))
        return True
    except OSError:
        return False


def watchdog_interval(env: Mapping[str, str] | None = None) -> float | None:
    """Seconds between WATCHDOG=1 pings (half of WatchdogSec), or None when systemd wants none."""
    env = os.environ if env is None else env
    usec = env.get("WATCHDOG_USEC")
    pid = env.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return max(0.05, int(usec) / 2e6)
    except ValueError:
        return None


FAILED = "failed"


class Health:
    """Thread-safe state of the unit's parts, plus counters; `snapshot()` is what status shows."""

    def __init__(self, unit_id: str = "", clock=time.time):
        self._lock = threading.Lock()
        self.clock = clock
        self.started = time.time()
        self.unit_id = unit_id
        self.parts: dict[str, dict[str, Any]] = {}
        self.counters: dict[str, int] = {}
        self.info: dict[str, Any] = {}
        self._beats: dict[str, float] = {}

    def set(self, part: str, state: str, detail: str = "", **extra: Any) -> bool:
        """Record a part's state; returns True when the state changed (worth a log line)."""
        with self._lock:
            old = self.parts.get(part, {})
            changed = old.get("state") != state or old.get("detail", "") != detail
            self.parts[part] = {"state": state, **({"detail": detail} if detail else {}), **extra,
                                "since": old.get("since") if not changed else time.time()}
            return changed

    def get(self, part: str) -> dict[str, Any]:
        with self._lock:
            return dict(self.parts.get(part, {}))

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.counters[name] = self.counters.get(name, 0) + n

    def note(self, key: str, value: Any) -> None:
        with self._lock:
            self.info[key] = value

    def beat(self, loop: str) -> None:
        """A loop says it is alive; `stalled_loops()` lists those that stopped saying so."""
        with self._lock:
            self._beats[loop] = time.monotonic()

    def stalled_loops(self, max_age_s: float) -> list[str]:
        now = time.monotonic()
        with self._lock:
            return [k for k, t in self._beats.items() if now - t > max_age_s]

    def overall(self) -> tuple[str, list[str]]:
        """("ok" | "degraded" | "failed", the parts that are not ok). `failed`: a part that a restart is
        for (a thread of the service died); everything else only degrades."""
        with self._lock:
            bad = [f"{k}: {v['state']}" + (f" ({v['detail']})" if v.get("detail") else "")
                   for k, v in sorted(self.parts.items()) if v.get("state") not in ("ok", "none", "sensor")]
            failed = any(v.get("state") == FAILED for v in self.parts.values())
        return ("failed" if failed else "ok" if not bad else "degraded"), bad

    def snapshot(self) -> dict[str, Any]:
        state, problems = self.overall()
        with self._lock:
            return {"unit_id": self.unit_id, "state": state, "problems": problems, "updated": time.time(),
                    "uptime_s": round(time.time() - self.started, 1), "pid": os.getpid(),
                    "parts": json.loads(json.dumps(self.parts, default=str)),
                    "counters": dict(self.counters), **json.loads(json.dumps(self.info, default=str))}

    def summary(self) -> str:
        """One line for systemd's STATUS=."""
        state, problems = self.overall()
        with self._lock:
            c = self.counters
            line = f"{state}; reads {c.get('reads', 0)}, queue {self.info.get('buffer', {}).get('depth', '?')}"
        return line + ("; " + "; ".join(problems) if problems else "")


def read_status(path: str | Path) -> dict[str, Any] | None:
    """The last status written (by `write_status`), or None when there is none or it is unreadable."""
    try:
        doc = json.loads(Path(path).read_text("utf-8"))
        return doc if isinstance(doc, dict) else None
    except (OSError, ValueError):
        return None


def write_status(path: str | Path, snapshot: dict[str, Any]) -> None:
    """Atomically replace the status file, so a reader never sees half of it (two writers at once - the
    health loop and a stop - each write their own temporary file)."""
    p = Path(path)
    tmp = p.with_name(f"{p.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(snapshot, indent=1, default=str), "utf-8")
    os.replace(tmp, p)
