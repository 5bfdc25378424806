"""Unit health flags, the units API and the server-side plots, without a browser (SQLite and
PostgreSQL for the SQL that differs between them)."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest

from central import unit_health
from central.config import Settings
from central.console.plots import line_chart
from central.schema import heartbeats
from central.unit_health import UnitHealth, flags_for
from policy_fixtures import insert_reads

NOW = datetime(2027, 1, 10, 12, 0, tzinfo=timezone.utc)
S = Settings(heartbeat_interval_s=60, silent_after_heartbeats=3, growth_window_heartbeats=4)


def _unit(window: list[dict], last: datetime | None = NOW, status: str = "active") -> tuple[UnitHealth, list[dict]]:
    depths = [b.get("queue", {}).get("depth") for b in window]
    return UnitHealth("u1", "GATE-1", status, NOW - timedelta(days=30), last, window[-1] if window else {}, depths), window


def _beats(depths, dropped=None, quarantined=None, state="ok"):
    dropped = dropped or [0] * len(depths)
    quarantined = quarantined or [0] * len(depths)
    return [{"queue": {"depth": d, "dropped": x, "quarantined": q}, "state": state}
            for d, x, q in zip(depths, dropped, quarantined)]


@pytest.mark.parametrize("depths, flagged", [([3, 5, 5, 9], True), ([3, 5, 4, 9], False), ([4, 4, 4, 4], False),
                                             ([9, 7, 3, 0], False), ([3, 5, 9], False)])
def test_a_buffer_that_only_grows_across_the_window_is_flagged(depths, flagged):
    h, w = _unit(_beats(depths))
    assert any(f.startswith("buffer growing") for f in flags_for(h, w, S, NOW)) is flagged


def test_silence_drops_quarantine_and_faults_are_flagged_and_a_revoked_unit_is_not():
    h, w = _unit(_beats([0, 0]), last=NOW - timedelta(seconds=179))
    assert flags_for(h, w, S, NOW) == []                                  # 3 intervals of 60 s: not yet
    h, w = _unit(_beats([0, 0]), last=NOW - timedelta(seconds=181))
    assert flags_for(h, w, S, NOW) == ["silent for 3 min"]
    h, w = _unit(_beats([0, 0], dropped=[2, 5], quarantined=[1, 1]))
    assert flags_for(h, w, S, NOW) == ["dropping reads (+3 over the last 2 heartbeats)"]
    h, w = _unit([{"queue": {"depth": 0}, "state": "degraded", "problems": ["camera: error (no frames)"]}])
    assert flags_for(h, w, S, NOW) == ["reports camera: error (no frames)"]
    h, w = _unit([], last=None)
    assert flags_for(h, w, S, NOW) == ["no heartbeat since enrolment (30 days ago)"]
    h, w = _unit(_beats([1, 2, 3, 4], dropped=[0, 0, 0, 9]), last=NOW - timedelta(days=1), status="revoked")
    assert flags_for(h, w, S, NOW) == []


def test_line_chart_draws_each_series_on_round_ticks_and_says_when_empty():
    zone = Settings(time_zone="America/Los_Angeles").zone
    start = NOW - timedelta(hours=48)
    empty = line_chart({}, start, NOW, zone, "Reads per hour")
    assert "no data in this period" in empty and "<polyline" not in empty
    svg = line_chart({"GATE-1": [(NOW - timedelta(hours=h), float(h)) for h in range(48)],
                      "GATE-2": [(NOW - timedelta(hours=1), 37.0)]}, start, NOW, zone, "Reads per hour", "reads/h")
    assert svg.count("<polyline") == 2 and svg.count("<circle") == 1     # a one-point series gets a dot
    ticks = [float(t) for t in re.findall(r'class="tick" x="\d+" y="[\d.]+" text-anchor="end">([\d.]+)<', svg)]
    assert ticks == [0, 12.5, 25, 37.5, 50] or ticks == [0, 20, 40, 60, 80] or max(ticks) >= 47
    assert all(t == int(t) or t * 2 == int(t * 2) for t in ticks)
    assert "GATE-1: 48 points, max 47 reads/h" in svg


def test_reads_per_hour_per_site_and_the_units_api(policy):
    now = datetime.now(timezone.utc).replace(minute=30, second=0, microsecond=0)
    insert_reads(policy.engine, [{"plate": "7ABC123", "site": "gate-1", "captured_at": now},
                                 {"plate": "7ABC124", "site": "gate-1", "captured_at": now - timedelta(minutes=10)},
                                 {"plate": "7ABC125", "site": "gate-1", "captured_at": now - timedelta(hours=2)},
                                 {"plate": "7ABC126", "site": "gate-2", "captured_at": now - timedelta(hours=2)},
                                 {"plate": "7ABC127", "site": "gate-2", "captured_at": now - timedelta(days=3)}])
    per = unit_health.reads_per_hour(policy.engine, 48, now + timedelta(minutes=1))
    hour = now.replace(minute=0)
    assert per == {"gate-1": [(hour - timedelta(hours=2), 1), (hour, 2)], "gate-2": [(hour - timedelta(hours=2), 1)]}
    supervisor = policy.user("sgt.park", "supervisor")
    listed = supervisor.get("/v1/units").json()
    assert {u["unit_id"] for u in listed} == {"unit-gate-1", "unit-gate-2"}
    assert all(u["flags"] == [] and u["last_heartbeat_at"] is None for u in listed)   # enrolled just now
    # heartbeats are timed from the real now: `now` above is this hour's half past, up to 30 min away from
    # the units' enrolment, which would make a unit with no heartbeat yet look silent
    real = datetime.now(timezone.utc)
    beats = [{"unit_id": "unit-gate-1", "received_at": real - timedelta(seconds=50 - 10 * i), "queue_depth": d,
              "dropped": 0, "body": {"queue": {"depth": d, "dropped": 0}, "temperature_c": 50 + i, "state": "ok"}}
             for i, d in enumerate([1, 4, 4, 9, 20, 35])]                   # six beats; the last five are the window
    with policy.engine.begin() as conn:
        conn.execute(heartbeats.insert(), beats)
    health = {u.unit_id: u for u in unit_health.units_health(policy.engine, policy.settings, real)}
    assert health["unit-gate-1"].depths == [4, 4, 9, 20, 35] and health["unit-gate-1"].temperature_c == 55
    assert health["unit-gate-1"].flags == ["buffer growing (4 to 35 reads unsent)"]
    assert health["unit-gate-2"].depths == [] and health["unit-gate-2"].flags == []
    assert policy.user("ofc.lee", "officer").get("/v1/units").status_code == 403


def test_dates_from_forms_are_days_in_the_stores_time_zone():
    from central.clock import parse_time
    from central.console.web import day_bound
    zone = Settings(time_zone="America/Los_Angeles").zone
    assert parse_time(day_bound("2026-12-06", "from", zone)) == datetime(2026, 12, 6, 8, 0, tzinfo=timezone.utc)
    assert parse_time(day_bound("2026-07-04", "to", zone, end=True)) == \
        datetime(2026, 7, 5, 6, 59, 59, 999000, tzinfo=timezone.utc)               # summer time: UTC-7
    assert day_bound("2026-12-06T10:00:00Z", "from", zone) == "2026-12-06T10:00:00Z"      # a full time is kept
    with pytest.raises(ValueError, match="^to: a date"):
        day_bound("2026-13-01", "to", zone)


@pytest.mark.parametrize("size, progressive", [((640, 360), False), ((960, 540), True), ((1, 1), False)])
def test_jpeg_size_is_read_from_the_frame_header(size, progressive):
    import io
    from PIL import Image
    from central.console.search_pages import box_overlay, jpeg_size
    out = io.BytesIO()
    Image.new("RGB", size, (10, 20, 30)).save(out, "JPEG", progressive=progressive)
    assert jpeg_size(out.getvalue()) == size
    assert jpeg_size(b"not a jpeg") is None and jpeg_size(out.getvalue()[:20]) is None
    if size == (960, 540):              # a 1920x1080 frame sent downscaled: the box is halved
        assert box_overlay([100, 200, 300, 260], size, (1920, 1080)) == {"x": 50, "y": 100, "w": 100, "h": 30}
        assert box_overlay([100, 200, 300, 260], size, None) is None
