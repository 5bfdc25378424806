"""`alpr-unit status --config FILE`: the unit's state as `unit.status` collects it, as text or JSON.

Exit 0 when the unit is running and healthy, 1 otherwise.
"""
from __future__ import annotations

import argparse
import json
from typing import Any

from unit import status
from unit.commands.common import with_config
from unit.config import UnitConfig


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
        if b.get("salvaged") or b.get("lost") or b.get("lost_unknown"):
            lost = f"{b.get('lost', 0)}" + (" and an unknown number more" if b.get("lost_unknown") else "")
            lines.append(f"buffer: a damaged buffer file was replaced: {b.get('salvaged', 0)} reads carried over, "
                         f"{lost} unsent reads lost")
    parts = st.get("parts") or {}
    if "camera" in parts:
        cam = parts["camera"]
        lines.append(f"camera: {cam['state']}" + (f" ({cam['detail']})" if cam.get("detail") else ""))
    if st.get("camera_stream"):
        c = st["camera_stream"]
        lines.append(f"camera stream: {c.get('kind', '?')}: {c.get('frames', 0)} frames, {c.get('dropped', 0)} dropped "
                     f"(only the newest kept), {c.get('reconnects', 0)} reconnects, capture to pipeline "
                     f"{c.get('latency_ms', 0):.0f} ms" + (f"; last error {c['last_error']}" if c.get("last_error") else ""))
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


@with_config
def run(args: argparse.Namespace, cfg: UnitConfig) -> int:
    st = status.collect(cfg)
    print(json.dumps(st, indent=1, default=str) if args.json else render(st))
    return 0 if st.get("state") == "ok" else 1
