"""The unit config: the shipped example is valid, errors name the key, live keys reload through watchdog."""
from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

from unit.config import ConfigError, changed_keys, live_keys, load, merge_live
from unit.reload import FileWatcher
from unit.sources.pushed import QueueSource
from wire import seal

EXAMPLE = Path(__file__).resolve().parents[1] / "unit" / "example-config.toml"


@pytest.fixture
def cfgdir(tmp_path):
    key = X25519PrivateKey.generate()
    (tmp_path / "central-seal.pub").write_text(seal.sealing_public_b64(key.public_key()))
    text = EXAMPLE.read_text().replace("/var/lib/alpr-unit/buffer.sqlite", str(tmp_path / "buf.sqlite"))
    (tmp_path / "unit.toml").write_text(text)
    return tmp_path


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def test_example_config_is_valid_and_complete(cfgdir):
    cfg = load(cfgdir / "unit.toml")
    assert cfg.unit_id == "gate3-east" and cfg.site == "port-north"
    assert [lane.name for lane in cfg.lanes] == ["in", "out"]
    loop = cfg.lanes[0].sensor
    assert (loop.kind, loop.pin, loop.active_high, loop.pull_up, loop.debounce_ms, loop.min_presence_ms) == \
        ("loop", 17, False, True, 20.0, 80.0)
    assert cfg.lanes[0].roi == (0.0, 0.3, 0.5, 1.0) and cfg.lanes[1].direction == "out"
    assert cfg.camera.resolution == (1920, 1080) and cfg.camera.options.shutter_us == 1000
    assert cfg.camera.pre_trigger_frames == 3 and cfg.camera.burst_frames == 5
    assert cfg.buffer.path == str(cfgdir / "buf.sqlite") and cfg.buffer.max_mb == 512
    assert cfg.uplink.batch_size == 50 and cfg.uplink.url.startswith("https://")
    assert cfg.central_kid == seal.sealing_key_id(cfg.central_public_key)
    assert cfg.status_path == str(cfgdir / "buf.sqlite") + ".status.json"
    assert cfg.recognition.two_row_plates is True and cfg.recognition.framings == 2


def test_two_row_plates_and_framings_reach_the_services_recogniser(cfgdir):
    from unit.health import Health
    from unit.pipeline import ModelHolder
    from unit.recognise import framing_sets
    edit(cfgdir / "unit.toml", "two_row_plates = true", "two_row_plates = false")
    edit(cfgdir / "unit.toml", "framings = 2 ", "framings = 1 ")
    cfg = load(cfgdir / "unit.toml")
    assert cfg.recognition.two_row_plates is False
    rec = ModelHolder(cfg.recognition, Health("t")).get()
    assert rec.two_row is False and (rec.framings, rec.crop_framings) == framing_sets(1)
    rec = ModelHolder(load(_without_two_row_key(cfgdir)).recognition, Health("t")).get()
    assert rec.two_row is True


def _without_two_row_key(cfgdir: Path) -> Path:
    """The example config with the two-row key left out: the default applies."""
    p = cfgdir / "defaults.toml"
    p.write_text((cfgdir / "unit.toml").read_text().replace("two_row_plates = false", ""))
    return p


@pytest.mark.parametrize("old,new,message", [
    ('unit_id = "gate3-east"', "unit_id = 7", "unit_id: expected a non-empty string, got 7"),
    ("shutter_us = 1000 ", "shutter_us = 0.5 ", "camera.picamera2.shutter_us: expected an integer from 10 to 1000000"),
    ('kind = "picamera2"', 'kind = "usb"', "camera.kind: expected one of 'picamera2', 'replay', 'gstreamer', 'rtsp', 'v4l2', 'jetson-csi', got 'usb'"),
    ('direction = "in"', 'direction = "north"', "lanes[0].direction: expected one of 'in', 'out', 'unknown'"),
    ("roi = [0.0, 0.3, 0.5, 1.0]", "roi = [0.5, 0.3, 0.2, 1.0]", "lanes[0].roi: expected [x0, y0, x1, y1]"),
    ("pin = 27", "pin = 17", "lanes[1].sensor.pin: expected a pin no other lane uses, got 17"),
    ("pull_up = true", 'pull_up = "yes"', "lanes[0].sensor.pull_up: expected true, false"),
    ("min_read_confidence = 0.2", "min_read_confidence = 1.5", "recognition.min_read_confidence: expected a number from 0 to 1"),
    ("framings = 2 ", "framings = 3 ", "recognition.framings: expected an integer from 1 to 2"),
    ("two_row_plates = true", 'two_row_plates = "no"', "recognition.two_row_plates: expected true or false"),
    ("low_confidence_reads = true", 'low_confidence_reads = "maybe"',
     "recognition.low_confidence_reads: expected true or false"),
    ("gain_max = 8.0", "gain_max = 0.5", "camera.picamera2.gain_max: expected a number from 1.0 to 64.0"),
    ("gain_min = 1.0", "gain_min = 9.0", "camera.picamera2.gain_max: expected a number >= gain_min (9.0), got 8.0"),
    ("# lens_position = 0.5", "lens_position = 40", "camera.picamera2.lens_position: expected a number from 0.0 to 32.0"),
    ("context_width = 960", "context_width = 960\nshutter_us = 900",
     "camera.shutter_us: unknown key in [camera]; it belongs to the picamera2 camera: put it under [camera.picamera2]"),
    ("context_width = 960", 'context_width = 960\nsource = "clips"', "camera.source: unknown key in [camera]; a replay "
     "camera's folder is [camera.replay] path"),
    ('[camera.replay]', '[camera.replay]\nfolder = "x"', "camera.replay.folder: unknown key (known: path)"),
    ('[camera.replay]', '[camera.usb]\ndevice = 0\n[camera.replay]', "camera.usb: unknown key"),
    ('url = "https://central.example.org:8443"', 'ur1 = "https://central.example.org:8443"',
     "uplink.ur1: unknown key (known: backoff_base_s"),
    ("batch_size = 50", 'batch_size = "50"', "uplink.batch_size: expected an integer from 1 to 10000, got '50'"),
    ("batch_size = 50", "batch_size = 50\nidle_s = 0", "uplink.idle_s: expected a number from 0.001 to 3600"),
    ('level = "INFO"', 'level = "LOUD"', "log.level: expected one of"),
    ("window_s = 10", "windw_s = 10", "dedup.windw_s: unknown key"),
    ('url = "https://central.example.org:8443"', 'url = "ftp://x"', "uplink.url: expected an http(s) URL"),
    ('public_key_path = "central-seal.pub"', 'public_key_path = "missing.pub"', "central.public_key_path: expected a readable"),
    ('public_key_path = "central-seal.pub"', 'public_key = "bm90IGEga2V5"', "central.public_key: expected an X25519 public key"),
    ('[hotlist]', 'bogus = 1\n[hotlist]', "motion.bogus: unknown key (known: min_fraction"),
])
def test_errors_name_the_key_and_what_was_expected(cfgdir, old, new, message):
    edit(cfgdir / "unit.toml", old, new)
    with pytest.raises(ConfigError) as exc:
        load(cfgdir / "unit.toml")
    assert message in str(exc.value)


def test_not_toml_and_missing_required(cfgdir, tmp_path):
    (tmp_path / "bad.toml").write_text("unit_id = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(tmp_path / "bad.toml")
    edit(cfgdir / "unit.toml", 'site = "port-north"', "")
    with pytest.raises(ConfigError, match=r"^site: missing \(required\)"):
        load(cfgdir / "unit.toml")


def test_uplink_keys_are_typed_and_their_paths_resolved_like_the_rest(cfgdir):
    with open(cfgdir / "unit.toml", "a") as f:
        f.write('ca_bundle = "ca.pem"\nidle_s = 0.5\nheartbeat_interval_s = 30\n')
    up = load(cfgdir / "unit.toml").uplink
    assert up.ca_bundle == str(cfgdir / "ca.pem") and up.identity_key_path == "/etc/alpr-unit/identity.key"
    assert (up.idle_s, up.heartbeat_interval_s, up.drain_s, up.max_batch_bytes) == (0.5, 30.0, 10.0, 8 * 1024 * 1024)


def test_a_kind_options_table_is_checked_even_while_another_kind_runs(cfgdir):
    """Switching a unit to its replay camera for a test keeps the Pi camera's table, checked."""
    edit(cfgdir / "unit.toml", 'kind = "picamera2"', 'kind = "replay"')
    cfg = load(cfgdir / "unit.toml")
    assert cfg.camera.kind == "replay" and cfg.camera.options.path == ""
    edit(cfgdir / "unit.toml", "shutter_us = 1000 ", "shutter_us = 5 ")
    with pytest.raises(ConfigError, match="camera.picamera2.shutter_us: expected an integer from 10"):
        load(cfgdir / "unit.toml")


def test_changed_keys_split_live_from_restart(cfgdir):
    a = load(cfgdir / "unit.toml")
    edit(cfgdir / "unit.toml", "min_read_confidence = 0.2", "min_read_confidence = 0.6")
    edit(cfgdir / "unit.toml", "window_s = 10", "window_s = 4")
    edit(cfgdir / "unit.toml", "burst_frames = 5", "burst_frames = 7")
    b = load(cfgdir / "unit.toml")
    live, restart = changed_keys(a, b)
    assert live == ["dedup.window_s", "recognition.min_read_confidence"]
    assert restart == ["camera.burst_frames"]
    assert {"log.level", "hotlist.path", "recognition.min_det_score", "recognition.low_confidence_reads"} <= live_keys(a)
    merged = merge_live(a, b)                # what a running unit goes on with: live keys only
    assert merged.dedup.window_s == 4 and merged.recognition.min_read_confidence == 0.6
    assert merged.camera.burst_frames == 5 and merged.camera == a.camera and merged.lanes == a.lanes


def test_live_keys_are_the_ones_the_example_and_the_docs_mark_live(cfgdir):
    """The field metadata is the one list of live keys: the example config marks each LIVE and the
    docs' table names each, and no other key is marked LIVE."""
    cfg = load(cfgdir / "unit.toml")
    live = live_keys(cfg)
    assert len(live) == 13
    marked, section = set(), ""
    for line in EXAMPLE.read_text().splitlines():
        head = line.split("#")[0].strip()
        if head.startswith("[") and not head.startswith("[["):
            section = head.strip("[]")
        elif "=" in head and "LIVE" in line.split("#", 1)[-1] and not line.lstrip().startswith("#"):
            marked.add(f"{section}.{head.split('=')[0].strip()}")
    assert marked == live
    table = (EXAMPLE.parents[1] / "docs" / "unit-config.md").read_text().split("## Live keys")[1].split("## ")[0]
    for k in live:
        section, name = k.split(".")
        assert name in table and section in table, k


def wait_for(pred, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.02)
    return False


def test_file_watcher_sees_in_place_writes_and_atomic_renames(tmp_path):
    target = tmp_path / "watched.toml"
    target.write_text("a = 1\n")
    seen: list[Path] = []
    w = FileWatcher(settle_s=0.05)
    w.watch(target, seen.append)
    w.start()
    try:
        target.write_text("a = 2\n")
        assert wait_for(lambda: len(seen) == 1)
        tmp = tmp_path / "watched.toml.new"
        tmp.write_text("a = 3\n")
        tmp.replace(target)                      # how many editors save
        assert wait_for(lambda: len(seen) == 2)
        (tmp_path / "other.txt").write_text("x")  # a neighbour changing is not our file
        time.sleep(0.3)
        assert len(seen) == 2 and seen[0] == target.resolve()
    finally:
        w.stop()


def test_running_unit_reloads_live_keys_without_restart_and_names_the_rest(cfgdir, caplog):
    from unit.service import Unit, watch_files
    Device.pin_factory = MockFactory()
    try:
        cfg = load(cfgdir / "unit.toml")
        hot = cfgdir / "hot.txt"
        hot.write_text("7ABC123,stolen\n")
        edit(cfgdir / "unit.toml", '[hotlist]\npath = ""', f'[hotlist]\npath = "{hot}"')
        cfg = load(cfgdir / "unit.toml")
        unit = Unit(cfg, QueueSource(), env={})
        assert len(unit.hotlist) == 1
        watcher = watch_files(unit, cfg)
        caplog.set_level(logging.INFO)
        try:
            edit(cfgdir / "unit.toml", "min_read_confidence = 0.2", "min_read_confidence = 0.75")
            edit(cfgdir / "unit.toml", "window_s = 10", "window_s = 3")
            edit(cfgdir / "unit.toml", "shutter_us = 1000", "shutter_us = 500")
            assert wait_for(lambda: unit.stage.cfg.recognition.min_read_confidence == 0.75)
            assert unit.stage.deduper.window_s == 3
            assert unit.cfg.camera.options.shutter_us == 1000              # not applied live...
            assert wait_for(lambda: unit.health.snapshot().get("restart_needed") == ["camera.picamera2.shutter_us"])
            assert any("need a restart" in r.getMessage() and "camera.picamera2.shutter_us" in r.getMessage()
                       for r in caplog.records)
            hot.write_text("7ABC123,stolen\nXYZ*,partial\n")                # hot list reloads on its own change
            assert wait_for(lambda: len(unit.stage.hotlist) == 2)
            (cfgdir / "unit.toml").write_text("unit_id = ")                # a broken save changes nothing
            assert wait_for(lambda: any("config change ignored" in r.getMessage() for r in caplog.records))
            assert unit.stage.cfg.recognition.min_read_confidence == 0.75
        finally:
            watcher.stop()
            unit.stop()
    finally:
        Device.pin_factory.reset()


def test_every_camera_kind_and_its_keys_are_in_the_example_and_the_docs():
    """Each kind of the registry has its table in the example config with every key, and its section in
    docs/unit-config.md naming every key."""
    import re
    import tomllib
    from dataclasses import fields

    from unit import sources
    text = EXAMPLE.read_text()
    example = tomllib.loads(text)["camera"]
    docs = (EXAMPLE.parents[1] / "docs" / "unit-config.md").read_text()
    for name in sources.KINDS:
        keys = {f.name for f in fields(sources.kind(name).options)}
        table = text.split(f"[camera.{name}]")[1].split("\n[")[0]
        commented = {k for k in keys if re.search(rf"^# {k} = ", table, re.M)}    # no value: TOML has no None
        assert set(example[name]) | commented == keys, name
        section = docs.split(f"### `{name}`\n")[1].split("\n### ")[0]
        for k in keys:
            assert re.search(rf"^\| `{k}`|, `{k}`", section, re.M), (name, k)
