"""Where the central store keeps its things, the limits it serves under, and the policy settings.

A home folder holds keys/ and central.json (the database URL chosen at `init`, so `serve` and the
admin commands find the same database without repeating --db, and the `settings` below). Resolution
order for each: command-line option, environment (ALPR_CENTRAL_HOME, ALPR_CENTRAL_DB), central.json,
default.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from central.db import sqlite_url

DEFAULT_HOME = "alpr-central"
CONFIG_FILE = "central.json"


def resolve_home(option: str | None) -> Path:
    return Path(option or os.environ.get("ALPR_CENTRAL_HOME") or DEFAULT_HOME).resolve()


def resolve_db(home: Path, option: str | None) -> str:
    if option or os.environ.get("ALPR_CENTRAL_DB"):
        return option or os.environ["ALPR_CENTRAL_DB"]
    return _load_file(home).get("db") or sqlite_url(home / "central.db")


def resolve_serve_db(home: Path, option: str | None) -> str:
    """The URL `serve` connects with: the option or environment, else the serving role's URL saved
    by `init --serve-url`, else the owner's (`resolve_db`)."""
    if option or os.environ.get("ALPR_CENTRAL_DB"):
        return option or os.environ["ALPR_CENTRAL_DB"]
    return _load_file(home).get("serve_db") or resolve_db(home, None)


def save_serve_db(home: Path, url: str) -> None:
    _save_file(home, {**_load_file(home), "serve_db": url})


def _load_file(home: Path) -> dict:
    cfg = home / CONFIG_FILE
    return json.loads(cfg.read_text()) if cfg.exists() else {}


def _save_file(home: Path, doc: dict) -> None:
    (home / CONFIG_FILE).write_text(json.dumps(doc, indent=2) + "\n")


def save_db(home: Path, url: str) -> None:
    _save_file(home, {**_load_file(home), "db": url})       # keep the settings beside it


@dataclass(frozen=True)
class Limits:
    """Request limits; past them the API answers 413 (size) or 429 (rate, with Retry-After)."""
    max_batch_reads: int = 500
    max_body_bytes: int = 16 * 1024 * 1024
    max_small_body_bytes: int = 64 * 1024        # enrolment and heartbeats
    rate_per_s: float = 20.0                     # requests per second per unit, sustained
    rate_burst: int = 40
    replay_window_s: float = 120.0

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "Limits":
        return cls(**json.loads(text))


POLICY_FILE = Path(__file__).with_name("policy") / "alpr-policy-462.txt"
MIN_RETENTION_YEARS = 5          # policy 462.4: "stored for a minimum of five years"


@dataclass(frozen=True)
class Settings:
    """Policy settings, kept in central.json under "settings" (`alpr-central config set`).

    Argon2 costs are here so a test can use cheap hashes; the stored hash names its own costs, so
    changing them later never locks anybody out (hashes are upgraded at the next login)."""
    retention_years: int = MIN_RETENTION_YEARS
    session_ttl_s: int = 8 * 3600            # absolute session lifetime
    session_idle_s: int = 30 * 60            # a session unused this long ends
    lockout_failures: int = 5                # consecutive failed logins before the account locks
    lockout_minutes: int = 15
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    argon2_parallelism: int = 4
    min_password_length: int = 12
    search_timeout_s: int = 10               # PostgreSQL: a search running longer is refused as too broad
    policy_path: str = ""                    # empty: the policy shipped in the package
    report_dir: str = ""                     # scheduled audit reports; empty: HOME/reports
    time_zone: str = "UTC"                   # IANA name; the console shows times in it (UTC on hover)
    heartbeat_interval_s: int = 60           # what units are configured to send (uplink.heartbeat_interval_s)
    silent_after_heartbeats: int = 3         # a unit quiet this many intervals is flagged
    growth_window_heartbeats: int = 5        # buffer depth or drops rising across this many heartbeats: flagged
    hotlist_retro_days: int = 0              # a new hot-list entry is checked against this many days of reads (0: off)
    audit_dir: str = ""                      # signed audit checkpoints (checkpoints.jsonl); empty: HOME/audit
    checkpoint_interval_s: int = 3600        # the scheduler signs the audit chain's head this often
    capture_ahead_s: int = 3600              # a capture time this far after its receipt is flagged as implausible
    capture_behind_s: int = 31 * 86400       # ... or this far before it (a unit's buffer keeps reads 30 days)

    def __post_init__(self) -> None:
        if self.retention_years < MIN_RETENTION_YEARS:
            raise ValueError(f"retention_years {self.retention_years}: policy 462.4 keeps ALPR data "
                             f"at least {MIN_RETENTION_YEARS} years")
        for name in ("session_ttl_s", "session_idle_s", "lockout_failures", "lockout_minutes",
                     "argon2_time_cost", "argon2_memory_kib", "argon2_parallelism", "min_password_length",
                     "search_timeout_s", "heartbeat_interval_s", "silent_after_heartbeats", "checkpoint_interval_s",
                     "capture_ahead_s", "capture_behind_s"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.growth_window_heartbeats < 2:
            raise ValueError("growth_window_heartbeats must be at least 2")
        if not 0 <= self.hotlist_retro_days <= 365 * MIN_RETENTION_YEARS:
            raise ValueError(f"hotlist_retro_days: 0 (off) to {365 * MIN_RETENTION_YEARS}")
        try:
            ZoneInfo(self.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"time_zone {self.time_zone!r}: an IANA time zone name, e.g. America/Los_Angeles") from None

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    def checkpoint_file(self, home: Path | None = None) -> Path | None:
        """Where signed audit heads are appended: audit_dir, else HOME/audit; None if neither is known."""
        if self.audit_dir:
            return Path(self.audit_dir) / "checkpoints.jsonl"
        return Path(home) / "audit" / "checkpoints.jsonl" if home is not None else None

    @property
    def policy_file(self) -> Path:
        return Path(self.policy_path) if self.policy_path else POLICY_FILE

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "Settings":
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_dict(cls, doc: dict) -> "Settings":
        known = cls.__dataclass_fields__
        unknown = sorted(set(doc) - set(known))
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(unknown)}")
        typed = {k: (type(getattr(cls, k))(v) if not isinstance(v, type(getattr(cls, k))) else v)
                 for k, v in doc.items()}
        return cls(**typed)


def load_settings(home: Path) -> Settings:
    return Settings.from_dict(_load_file(home).get("settings", {}))


def save_settings(home: Path, settings: Settings) -> None:
    defaults = asdict(Settings())
    changed = {k: v for k, v in asdict(settings).items() if defaults[k] != v}
    _save_file(home, {**_load_file(home), "settings": changed})
