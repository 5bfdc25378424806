"""The schedule: a daily retention run (policy 462.4) and a weekly audit report (462.5(c)).

`alpr-central schedule` runs `run_due` every `--interval` seconds (or once, with --once, for cron or a
systemd timer). What is due is worked out from what was done, not from a clock kept in memory:
retention is due when the last completed run started more than a day ago; a report is due for the
last full week (Monday to Sunday, UTC) when its file is not yet in the report folder; a signed
checkpoint of the audit chain (`central.checkpoints`) when the newest one in the checkpoint file is
older than `checkpoint_interval_s`. So a restart, or two schedulers, do no more than one of each.
"""
from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from central import audit, checkpoints, reports, retention
from central.clock import utcnow
from central.config import Settings
from central.keys import load_keys
from wire.times import aware

WHO = audit.system("scheduler")
RETENTION_EVERY = timedelta(days=1)


def report_dir(home: Path, settings: Settings) -> Path:
    return Path(settings.report_dir) if settings.report_dir else home / "reports"


def last_week(now: datetime) -> tuple[datetime, datetime]:
    monday = datetime.combine(now.date() - timedelta(days=now.weekday() + 7), time.min, timezone.utc)
    return monday, monday + timedelta(days=7) - timedelta(microseconds=1)


def run_due(engine: sa.Engine, settings: Settings, home: Path, now: datetime | None = None) -> dict[str, Any]:
    now = now or utcnow()
    done: dict[str, Any] = {}
    last = aware(retention.last_run_at(engine))
    if last is None or now - last >= RETENTION_EVERY:
        done["retention"] = retention.run(engine, settings, WHO, now=now)
    keys = load_keys(home / "keys")
    cp_file = settings.checkpoint_file(home)
    start, end = last_week(now)
    folder = report_dir(home, settings)
    stem = folder / f"audit-{start:%Y-%m-%d}_{end:%Y-%m-%d}"
    if not stem.with_suffix(".txt").exists():
        report = reports.build(engine, start, end, WHO, keys, cp_file, settings, signed_at=now)
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        for fmt in ("csv", "txt"):
            tmp = stem.with_suffix(f".{fmt}.tmp")
            tmp.write_text(reports.render(report, "text" if fmt == "txt" else fmt))
            tmp.replace(stem.with_suffix(f".{fmt}"))        # the .txt last: its presence means done
        done["report"] = str(stem.with_suffix(".txt"))
    elif checkpoints.due(cp_file, timedelta(seconds=settings.checkpoint_interval_s), now):
        verdict, head = checkpoints.checkpoint(engine, keys, cp_file, at=now)
        done["checkpoint"] = head if head else {"refused": verdict.as_dict()}
    return done
