"""`alpr-unit status --config FILE`: what the unit is doing, for a technician at the gate.

Reads the status file the running service rewrites every few seconds, the buffer's own figures
straight from its SQLite file (read-only), and the uplink's state file (what it last sent, when, and
what the central store answered), so it works whether or not the service is running. Exit 0 when the
unit is running and healthy, 1 otherwise.
"""
from __future__ import annotations

import argparse
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from unit.buffer import StoreError, read_stats
from unit.config import UnitConfig
from unit.service import load_or_exit, uplink_state_path
from unit.uplink import read_state


def collect(cfg: UnitConfig, now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    out: dict[str, Any] = {"unit_id": cfg.unit_id, "site": cfg.site}
    try:
        snap = json.loads(Path(cfg.status_path).read_text("utf-8"))
    except (OSError, ValueError) as exc:
        snap = None
        out["service"] = f"no status ({type(exc).__name__}): has the service run?"
    if snap is not None:
        age = now - float(snap.get("updated", 0))
        running = age <= max(3 * cfg.health.interval_s, 15) and not snap.get("stopped_at")
        out["service"] = ("running" if running else "stopped" if snap.get("stopped_at")
                          else f"not running (last status {age:.0f} s ago)")
        out.update({k: snap.get(k) for k in ("state", "problems", "uptime_s", "parts", "counters", "lanes",
                                             "model_versions", "last_read", "restart_needed") if k in snap})
        if not running:
            out["state"] = "stopped"
    try:
        out["buffer"] = read_stats(cfg.buffer.path, now)
    except (StoreError, sqlite3.Error) as exc:
        out["buffer"] = {"error": str(exc)}
    out["uplink"] = _uplink(cfg, snap if out.get("service") == "running" else None)
    return out


def _uplink(cfg: UnitConfig, snap: dict[str, Any] | None) -> dict[str, Any]:
    """The uplink's state: from the running service's status (fresh), else the uplink's own file."""
    if not cfg.uplink.get("url"):
        return {"state": "not configured", "detail": "no [uplink] url: reads stay in the buffer"}
    part = ((snap or {}).get("parts") or {}).get("uplink") or {}
    st = (snap or {}).get("uplink") or read_state(uplink_state_path(cfg)) or {}
    out = {"url": cfg.uplink["url"], **st}
    if part.get("state") == "error":            # never started (no identity key, say)
        out.update(state="error", detail=part.get("detail", ""))
    elif not st:
        out["state"] = "no state yet (has the service run with this [uplink]?)"
    return out


def render(st: dict[str, Any]) -> str:
    lines = [f"unit {st['unit_id']} at {st['site']}: {st.get('state', 'unknown')} ({st['service']})"]
    for p in st.get("problems") or []:
        lines.append(f"  problem: {p}")
    b = st.get("buffer", {})
    if "error" in b:
        lines.append(f"buffer: {b['error']}")
    else:
        age = b.get("oldest_unsent_age_s")
        lines.append(f"buffer: {b['depth']} unsent (oldest {'-' if age is None else f'{age:.0f} s'}), "
                     f"{b['bytes'] / 1e6:.1f} MB, sent {b['sent']}, dropped {b['dropped']}, "
                     f"quarantined {b['quarantined']}")
    parts = st.get("parts") or {}
    if "camera" in parts:
        cam = parts["camera"]
        lines.append(f"camera: {cam['state']}" + (f" ({cam['detail']})" if cam.get("detail") else ""))
    for name, lane in (st.get("lanes") or {}).items():
        extra = f", pin {lane['pin']}, {lane.get('edges', 0)} edges" if "pin" in lane else ""
        lines.append(f"lane {name}: sensor {lane['sensor']} {lane['state']}, triggered by {lane['mode']}{extra}"
                     + (f" ({lane['detail']})" if lane.get("detail") else ""))
    up = st.get("uplink") or {}
    if up:
        line = f"uplink: {up.get('state', '?')}"
        if up.get("url"):
            line += f" to {up['url']}"
        if up.get("detail"):
            line += f" ({up['detail']})"
        if "stored" in up:
            line += (f"; last success {up.get('last_success_at') or 'never'}; stored {up.get('stored', 0)}, "
                     f"duplicate {up.get('duplicate', 0)}, rejected {up.get('rejected', 0)}")
        if up.get("last_error"):
            line += f"; last error {up['last_error']}"
            if up.get("last_status"):
                line += f" (HTTP {up['last_status']})"
        if up.get("consecutive_failures"):
            line += f"; {up['consecutive_failures']} failures in a row, next try {up.get('next_attempt_at') or '-'}"
        lines.append(line)
    if "model" in parts:
        m = parts["model"]
        lines.append(f"model: {m['state']}" + (f" ({m['detail']})" if m.get("detail") else ""))
    if st.get("model_versions"):
        lines.append("model versions: " + ", ".join(f"{k} {v}" for k, v in st["model_versions"].items()))
    lr = st.get("last_read")
    lines.append(f"last read: {lr['captured_at']} lane {lr['lane']} conf {lr['confidence']:.2f} ({lr['read_id']})"
                 if lr else "last read: none")
    c = st.get("counters") or {}
    if c:
        lines.append("counters: " + ", ".join(f"{k} {v}" for k, v in sorted(c.items())))
    if st.get("restart_needed"):
        lines.append("restart needed for: " + ", ".join(st["restart_needed"]))
    return "\n".join(lines)


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("status", help="print the unit's state (queue, drops, sensors, camera, models, last read)")
    p.add_argument("--config", required=True, help="the unit's TOML config file")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    return p


def run(args: argparse.Namespace) -> int:
    cfg = load_or_exit(args.config)
    if cfg is None:
        return 2
    st = collect(cfg)
    print(json.dumps(st, indent=1, default=str) if args.json else render(st))
    return 0 if st.get("state") == "ok" else 1
