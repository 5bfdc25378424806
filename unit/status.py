"""What the unit is doing, for a technician at the gate (`alpr-unit status --config FILE`).

Reads the status file the running service rewrites every few seconds, the buffer's own figures
straight from its SQLite file (read-only), and the uplink's state file (what it last sent, when, and
what the central store answered), so it works whether or not the service is running. The command
(`unit.commands.status`) renders it.
"""
from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from unit.buffer import StoreError, read_stats
from unit.config import UnitConfig
from unit.service import uplink_state_path
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
                                             "camera_stream", "model_versions", "last_read", "restart_needed")
                    if k in snap})
        if not running:
            out["state"] = "stopped"
    try:
        out["buffer"] = read_stats(cfg.buffer.path)
    except (StoreError, sqlite3.Error) as exc:
        out["buffer"] = {"error": str(exc)}
    out["uplink"] = _uplink(cfg, snap if out.get("service") == "running" else None)
    return out


def _uplink(cfg: UnitConfig, snap: dict[str, Any] | None) -> dict[str, Any]:
    """The uplink's state: from the running service's status (fresh), else the uplink's own file."""
    if not cfg.uplink.url:
        return {"state": "not configured", "detail": "no [uplink] url: reads stay in the buffer"}
    part = ((snap or {}).get("parts") or {}).get("uplink") or {}
    st = (snap or {}).get("uplink") or read_state(uplink_state_path(cfg)) or {}
    out = {"url": cfg.uplink.url, **st}
    if part.get("state") == "error":            # never started (no identity key, say)
        out.update(state="error", detail=part.get("detail", ""))
    elif not st:
        out["state"] = "no state yet (has the service run with this [uplink]?)"
    return out
