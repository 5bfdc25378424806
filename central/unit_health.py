"""Unit health from heartbeats: what each unit last said, and which units need a technician.

A unit is flagged when it has been silent for more than `silent_after_heartbeats` heartbeat
intervals, when its buffer depth rose across the last `growth_window_heartbeats` heartbeats without
ever falling (the uplink is not keeping up), when its dropped or quarantined counts grew over that
window (reads lost or refused), or when it reports a part that is not ok (camera, sensors, model,
buffer, uplink). The same figures feed the units page, its plots and the maintenance notice on the
alerts page. Nothing here touches read data beyond counts per site and hour.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from central.clock import aware, utcnow
from central.config import Settings
from central.schema import heartbeats, reads, units

OK_STATES = ("ok", "none", "sensor")


@dataclass
class UnitHealth:
    unit_id: str
    site: str
    status: str                              # active | revoked
    enrolled_at: datetime
    last_heartbeat_at: datetime | None
    body: dict[str, Any]                     # the last heartbeat as the unit sent it
    depths: list[int | None]                 # queue depth over the window, oldest first
    flags: list[str] = field(default_factory=list)

    def _queue(self, key: str) -> Any:
        queue = self.body.get("queue")
        return queue.get(key) if isinstance(queue, dict) else None

    @property
    def depth(self) -> int | None:
        return self._queue("depth")

    @property
    def oldest_unsent_age_s(self) -> float | None:
        return self._queue("oldest_unsent_age_s")

    @property
    def dropped(self) -> int | None:
        return self._queue("dropped")

    @property
    def quarantined(self) -> int | None:
        return self._queue("quarantined")

    @property
    def uplink_state(self) -> str | None:
        uplink = self.body.get("uplink")
        return uplink.get("state") if isinstance(uplink, dict) else None

    def part(self, name: str) -> dict[str, Any] | None:
        parts = self.body.get("parts")
        return parts.get(name) if isinstance(parts, dict) and isinstance(parts.get(name), dict) else None

    @property
    def sensors(self) -> dict[str, str]:
        parts = self.body.get("parts") if isinstance(self.body.get("parts"), dict) else {}
        return {k.split(":", 1)[1]: str(v.get("state")) for k, v in sorted(parts.items())
                if k.startswith("lane:") and isinstance(v, dict)}

    @property
    def temperature_c(self) -> float | None:
        t = self.body.get("temperature_c")
        return float(t) if isinstance(t, (int, float)) and not isinstance(t, bool) else None

    @property
    def disk_free_fraction(self) -> float | None:
        disk = self.body.get("disk")
        if isinstance(disk, dict) and disk.get("total_bytes"):
            return disk.get("free_bytes", 0) / disk["total_bytes"]
        return None

    @property
    def versions(self) -> dict[str, str]:
        v = self.body.get("versions")
        return {str(k): str(x) for k, x in v.items()} if isinstance(v, dict) else {}

    @property
    def frame_size(self) -> tuple[int, int] | None:
        cam = self.body.get("camera")
        res = cam.get("resolution") if isinstance(cam, dict) else None
        if isinstance(res, list) and len(res) == 2 and all(isinstance(x, int) and x > 0 for x in res):
            return res[0], res[1]
        return None


def _rising(values: list[int | None]) -> bool:
    """Never falling across the window and higher at its end than at its start."""
    seen = [v for v in values if isinstance(v, int)]
    return len(seen) >= 2 and all(b >= a for a, b in zip(seen, seen[1:])) and seen[-1] > seen[0]


def _grew(first: dict[str, Any], last: dict[str, Any], key: str) -> int:
    a = (first.get("queue") or {}).get(key) if isinstance(first.get("queue"), dict) else None
    b = (last.get("queue") or {}).get(key) if isinstance(last.get("queue"), dict) else None
    return b - a if isinstance(a, int) and isinstance(b, int) and b > a else 0


def for_people(seconds: float) -> str:
    """A duration as people say it: 40 s, 12 min, 3 h, 2 days."""
    for size, name in ((86400, "days"), (3600, "h"), (60, "min")):
        if seconds >= 2 * size:
            return f"{int(seconds // size)} {name}"
    return f"{int(seconds)} s"


def flags_for(h: UnitHealth, window: list[dict[str, Any]], settings: Settings, now: datetime) -> list[str]:
    """Why a technician should look at this unit (empty: healthy). `window` is oldest first."""
    if h.status != "active":
        return []
    out = []
    silent_after = timedelta(seconds=settings.heartbeat_interval_s * settings.silent_after_heartbeats)
    since = h.last_heartbeat_at or h.enrolled_at
    if now - since > silent_after:
        quiet = for_people((now - since).total_seconds())
        out.append(f"silent for {quiet}" if h.last_heartbeat_at else f"no heartbeat since enrolment ({quiet} ago)")
    if len(window) >= settings.growth_window_heartbeats and _rising(h.depths):
        out.append(f"buffer growing ({h.depths[0]} to {h.depths[-1]} reads unsent)")
    if len(window) >= 2:
        for key, words in (("dropped", "dropping reads"), ("quarantined", "quarantining reads")):
            grew = _grew(window[0], window[-1], key)
            if grew:
                out.append(f"{words} (+{grew} over the last {len(window)} heartbeats)")
    if h.body.get("state") not in (None, "ok"):
        problems = h.body.get("problems") if isinstance(h.body.get("problems"), list) else []
        out.append("reports " + (", ".join(map(str, problems)) or str(h.body.get("state"))))
    return out


def _windows(conn: sa.Connection, n: int) -> list[tuple[Any, list[Any]]]:
    """Every unit with its last `n` heartbeats (newest first): one LATERAL query on PostgreSQL, one
    query per unit on SQLite (which has no LATERAL); both walk the (unit_id, received_at) index."""
    cols = (heartbeats.c.received_at, heartbeats.c.queue_depth, heartbeats.c.body)
    all_units = conn.execute(sa.select(units).order_by(units.c.site, units.c.unit_id)).all()
    if conn.dialect.name != "postgresql":
        return [(u, conn.execute(sa.select(*cols).where(heartbeats.c.unit_id == u.unit_id)
                                 .order_by(heartbeats.c.received_at.desc()).limit(n)).all()) for u in all_units]
    recent = (sa.select(*cols).where(heartbeats.c.unit_id == units.c.unit_id)
              .order_by(heartbeats.c.received_at.desc()).limit(n).lateral("recent"))
    rows = conn.execute(sa.select(units.c.unit_id, recent.c.received_at, recent.c.queue_depth, recent.c.body)
                        .select_from(units.join(recent, sa.true()))
                        .order_by(units.c.unit_id, recent.c.received_at.desc())).all()
    by_unit: dict[str, list[Any]] = {}
    for r in rows:
        by_unit.setdefault(r.unit_id, []).append(r)
    return [(u, by_unit.get(u.unit_id, [])) for u in all_units]


def units_health(engine: sa.Engine, settings: Settings, now: datetime | None = None) -> list[UnitHealth]:
    """Every enrolled unit with its last heartbeat and flags, flagged ones first."""
    now = now or utcnow()
    out = []
    with engine.connect() as conn:
        for u, newest_first in _windows(conn, settings.growth_window_heartbeats):
            rows = newest_first[::-1]
            window = [r.body if isinstance(r.body, dict) else {} for r in rows]
            h = UnitHealth(u.unit_id, u.site, u.status, aware(u.enrolled_at),
                           aware(rows[-1].received_at) if rows else None, window[-1] if window else {},
                           [r.queue_depth for r in rows])
            h.flags = flags_for(h, window, settings, now)
            out.append(h)
    return sorted(out, key=lambda h: (not h.flags, h.site, h.unit_id))


_FLAGGED: dict[int, tuple[float, list[UnitHealth]]] = {}
FLAGGED_MAX_AGE_S = 2.0


def flagged(engine: sa.Engine, settings: Settings) -> list[UnitHealth]:
    """The flagged units, for the maintenance notice on every alerts page: worked out at most every
    FLAGGED_MAX_AGE_S per process (heartbeats come every minute; alerts pages load far more often)."""
    key = id(engine)
    hit = _FLAGGED.get(key)
    if hit is not None and time.monotonic() - hit[0] < FLAGGED_MAX_AGE_S:
        return hit[1]
    out = [u for u in units_health(engine, settings) if u.flags]
    _FLAGGED[key] = (time.monotonic(), out)
    return out


def frame_size(engine: sa.Engine, unit_id: str) -> tuple[int, int] | None:
    """The camera frame size the unit last reported (what its reads' plate boxes are measured in)."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(heartbeats.c.body).where(heartbeats.c.unit_id == unit_id)
                            .order_by(heartbeats.c.received_at.desc()).limit(1)).scalars().all()
    if not rows or not isinstance(rows[0], dict):
        return None
    return UnitHealth(unit_id, "", "active", utcnow(), None, rows[0], []).frame_size


def unit_series(engine: sa.Engine, unit_id: str, days: int, now: datetime | None = None
                ) -> tuple[list[tuple[datetime, float]], list[tuple[datetime, float]]]:
    """(buffer depth, temperature) over the last `days` days, from the unit's heartbeats."""
    now = now or utcnow()
    temp = heartbeats.c.body["temperature_c"].as_float()
    with engine.connect() as conn:
        rows = conn.execute(sa.select(heartbeats.c.received_at, heartbeats.c.queue_depth, temp)
                            .where(heartbeats.c.unit_id == unit_id,
                                   heartbeats.c.received_at >= now - timedelta(days=days))
                            .order_by(heartbeats.c.received_at)).all()
    depth = [(aware(r[0]), float(r[1])) for r in rows if r[1] is not None]
    temps = [(aware(r[0]), float(r[2])) for r in rows if r[2] is not None]
    return depth, temps


def reads_per_hour(engine: sa.Engine, hours: int, now: datetime | None = None) -> dict[str, list[tuple[datetime, int]]]:
    """Reads per site and hour over the last `hours` hours (counts only: no plates)."""
    now = now or utcnow()
    start = (now - timedelta(hours=hours)).replace(minute=0, second=0, microsecond=0)
    if engine.dialect.name == "postgresql":
        bucket = sa.func.date_trunc("hour", reads.c.captured_at)
    else:
        bucket = sa.func.strftime("%Y-%m-%d %H:00:00", reads.c.captured_at)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(reads.c.site, bucket.label("hour"), sa.func.count())
                            .where(reads.c.captured_at >= start).group_by(reads.c.site, bucket)).all()
    out: dict[str, list[tuple[datetime, int]]] = {}
    for site, hour, count in rows:
        when = aware(hour if isinstance(hour, datetime) else datetime.fromisoformat(hour))
        out.setdefault(site, []).append((when, int(count)))
    return {site: sorted(v) for site, v in sorted(out.items())}
