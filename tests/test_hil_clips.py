"""The clip format, `alpr-unit clip show|label`, `alpr-unit record-clip`, and replaying clips through the
unit with real gpiozero MockFactory pins (no central store here: see test_hil_harness.py)."""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

from unit import cli, clips
from unit.config import load
from unit.sources.frames import Frame, ManualClock
from unit.sources.replay import ReplaySource
from wire import seal

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "hil" / "clips"
EXAMPLE = ROOT / "unit" / "example-config.toml"


@pytest.fixture
def pins():
    Device.pin_factory = MockFactory()
    yield Device.pin_factory
    Device.pin_factory.reset()


@pytest.fixture
def unit_toml(tmp_path):
    central = X25519PrivateKey.generate()
    (tmp_path / "central-seal.pub").write_text(seal.sealing_public_b64(central.public_key()))
    text = (EXAMPLE.read_text()
            .replace("/var/lib/alpr-unit/buffer.sqlite", str(tmp_path / "buf.sqlite"))
            .replace('kind = "picamera2"', 'kind = "replay"')
            .replace("interval_s = 5", "interval_s = 0.2"))
    p = tmp_path / "unit.toml"
    p.write_text(text)
    return p


def test_committed_demo_clips_are_valid_labelled_and_small():
    found = clips.find_clips([DEMO])
    assert len(found) >= 6
    total = sum(p.stat().st_size for p in DEMO.rglob("*") if p.is_file())
    assert total < 20 * 1024 * 1024, f"demo clips are {total / 1e6:.1f} MB; keep them under 20 MB"
    assert (DEMO / "ATTRIBUTION.md").exists() and "CC BY" in (DEMO / "ATTRIBUTION.md").read_text()
    names = " ".join(p.name for p in found)
    for theme in ("night", "two-lanes", "stops", "close-together", "bounce"):
        assert theme in names
    plates = []
    for path in found:
        c = clips.load(path)                         # checks every frame file is there
        assert c.version == clips.VERSION and c.truth.labelled and c.truth.vehicles
        assert c.capture["resolution"][0] <= 1280 and c.capture["resolution"][1] <= 720
        assert {v.lane for v in c.truth.vehicles} <= {lane["name"] for lane in c.lanes}
        assert c.edges and all(e.pin and e.level in (0, 1) for e in c.edges)
        plates += [v.plate for v in c.truth.vehicles]
    assert len(plates) == len(set(plates)), "each synthetic plate once in the set"


def test_events_level_and_active_follow_the_wiring():
    c = clips.load(DEMO / "03-day-two-lanes")
    wiring = {lane["name"]: lane["sensor"]["active_high"] for lane in c.lanes}
    for e in c.edges:
        assert bool(e.level) == (e.active == wiring[e.lane])
    lines = (c.path / clips.EVENTS_FILE).read_text().splitlines()
    assert json.loads(lines[0]).keys() >= {"t", "lane", "pin", "level", "active"}


def test_presences_drop_bounces_and_join_stop_and_go():
    bounce = clips.load(DEMO / "06-sensor-bounce")
    assert len(bounce.edges) > 2 * len(bounce.truth.vehicles)          # the relay chatters...
    assert len(bounce.presences()) == len(bounce.truth.vehicles)        # ...but two vehicles passed
    stops = clips.load(DEMO / "04-vehicle-stops")
    assert len(stops.presences()) == len(stops.truth.vehicles)          # rolled on and off the loop: one


def _copy_clip(src: Path, dst: Path) -> Path:
    import shutil
    shutil.copytree(src, dst)
    (dst / clips.TRUTH_FILE).unlink()
    return dst


def test_label_by_plates_in_order_and_add(tmp_path, capsys):
    clip = _copy_clip(DEMO / "05-close-together", tmp_path / "c")
    assert not clips.load(clip).truth.labelled
    assert cli.main(["clip", "show", str(clip)]) == 0
    assert "not labelled yet" in capsys.readouterr().out
    assert cli.main(["clip", "label", str(clip), "--plates", "ab-12 3, -", "--by", "tech 7"]) == 0
    t = clips.load(clip).truth
    assert t.labelled and [(v.plate, v.lane) for v in t.vehicles] == [("AB123", "in")] and t.labelled_by == "tech 7"
    assert cli.main(["clip", "label", str(clip), "--add", "XYZ999@in@3.0"]) == 0
    assert [v.plate for v in clips.load(clip).truth.vehicles] == ["AB123", "XYZ999"]
    assert cli.main(["clip", "label", str(clip), "--add", "XYZ999@nolane@1"]) == 2
    assert "not one of the clip's lanes" in capsys.readouterr().err
    assert cli.main(["clip", "label", str(clip), "--plates", "A,B,C"]) == 2      # more plates than vehicles


def test_label_asks_for_each_sensed_vehicle(tmp_path, monkeypatch, capsys):
    clip = _copy_clip(DEMO / "06-sensor-bounce", tmp_path / "c")
    answers = iter(["7zea 244", "LAT-7272"])
    asked = []
    monkeypatch.setattr("builtins.input", lambda prompt: asked.append(prompt) or next(answers))
    assert cli.main(["clip", "label", str(clip)]) == 0
    assert len(asked) == 2 and "frames/" in asked[0]                # names a frame to look at
    assert [v.plate for v in clips.load(clip).truth.vehicles] == ["7ZEA244", "LAT7272"]


@pytest.mark.parametrize("edit, message", [
    (lambda d: (d / "clip.json").write_text("{"), "not valid JSON"),
    (lambda d: (d / "events.jsonl").write_text('{"t": 1, "lane": "in"}\n'), "events.jsonl:1"),
    (lambda d: next((d / "frames").iterdir()).unlink(), "is missing"),
    (lambda d: (d / "truth.json").write_text('{"vehicles": [{"plate": "--", "lane": "in", "t": 1}]}'), "plate"),
])
def test_broken_clips_are_refused_with_the_file_named(tmp_path, edit, message):
    import shutil
    clip = tmp_path / "c"
    shutil.copytree(DEMO / "05-close-together", clip)
    edit(clip)
    with pytest.raises(clips.ClipError) as exc:
        clips.load(clip)
    assert message in str(exc.value)


def test_older_clips_with_edges_in_clip_json_still_load(tmp_path):
    import shutil
    shutil.copy(next((DEMO / "05-close-together" / "frames").iterdir()), tmp_path / "000001.jpg")
    (tmp_path / "clip.json").write_text(json.dumps({"frames": [{"file": "000001.jpg", "t": 0.0}],
                                                    "edges": [{"t": 0.0, "lane": "in", "active": True}]}))
    c = clips.load(tmp_path)
    assert c.version == 0 and len(c.edges) == 1 and not c.truth.labelled


def test_record_clip_rerecords_a_replay_through_the_sensor_code(tmp_path, unit_toml, pins):
    """record-clip with a replay camera: frames come from the clip, its edges are driven onto the mock
    pins, and what the sensors saw is recorded - levels as wired, times as replayed."""
    from unit.record import record
    src = DEMO / "06-sensor-bounce"
    cfg = load(unit_toml)
    clock = ManualClock(1_700_000_000.0)
    source = ReplaySource(src, cfg.camera, "in", clock=clock)
    out = tmp_path / "rec"
    clip = record(cfg, out, seconds=30, source=source, clock=clock, quality=70, note="bench test")
    original = clips.load(src)
    assert len(clip.frames) == len(original.frames)
    assert [round(f.t, 3) for f in clip.frames] == [round(f.t, 3) for f in original.frames]
    got = [(e.lane, e.active, round(e.t, 3)) for e in clip.edges]
    assert got == [(e.lane, e.active, round(e.t, 3)) for e in original.edges]
    assert all(e.pin == "GPIO17" and e.level == (0 if e.active else 1) for e in clip.edges)   # loop: active low
    again = clips.load(out)
    assert again.capture["unit_id"] == "gate3-east" and again.capture["note"] == "bench test"
    assert again.capture["resolution"] == [1280, 720] and again.capture["frames_dropped"] == 0
    assert [lane["name"] for lane in again.lanes] == ["in", "out"] and not again.truth.labelled
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o700                  # plates in clear: owner only


def test_record_clip_cli_stops_after_seconds(tmp_path, unit_toml, pins, capsys):
    # the example's first `path = ""` is [camera.replay]'s
    text = unit_toml.read_text().replace('path = ""', f'path = "{DEMO / "05-close-together"}"', 1)
    unit_toml.write_text(text)
    out = tmp_path / "rec"
    assert cli.main(["record-clip", str(out), "--seconds", "0.5", "--config", str(unit_toml)]) == 0
    c = clips.load(out)
    assert 2 <= len(c.frames) <= 8 and max(f.t for f in c.frames) <= 0.6
    assert "alpr-unit clip label" in capsys.readouterr().out
    assert cli.main(["record-clip", str(out), "--seconds", "1", "--config", str(unit_toml)]) == 2   # not empty


def test_record_clip_from_pushed_frames_and_pin_changes(tmp_path, unit_toml, pins):
    """A camera and a sensor that act on their own (as on a unit): edges come from the pins only."""
    import numpy as np

    from unit.record import record

    class Camera:
        def __init__(self):
            self.clock = ManualClock(1_700_000_000.0)
            self.n = 0

        def open(self):
            pass

        def close(self):
            pass

        def read(self, timeout):
            self.n += 1
            t = self.clock.advance(0.1)
            if self.n == 3:
                pins.pin(17).drive_low()          # the loop (active low) sees a vehicle
            if self.n == 6:
                pins.pin(17).drive_high()
            return Frame(np.full((48, 64, 3), self.n, np.uint8), t, self.n)

    cam = Camera()
    clip = record(load(unit_toml), tmp_path / "r", seconds=0.95, source=cam, clock=cam.clock)
    assert [(e.active, e.level, round(e.t, 2)) for e in clip.edges] == [(True, 0, 0.3), (False, 1, 0.6)]
    assert len(clip.frames) == 9


def test_replay_cli_reads_the_clip_format(tmp_path, unit_toml, capsys, root_logging):
    """`alpr-unit replay` on a v1 clip: edges from events.jsonl drive the pins (one burst per presence)."""
    rc = cli.main(["replay", str(DEMO / "05-close-together"), "--config", str(unit_toml), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc in (0, 1) and out["counters"]["bursts"] == 2, out
