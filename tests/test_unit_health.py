"""Health: sd_notify over a real unix datagram socket, structured logs, the status file and command."""
from __future__ import annotations

import argparse
import io
import json
import logging
import os
import socket
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

from unit import logs, status
from unit.commands import status as status_command
from unit.config import load
from unit.health import Health, sd_notify, watchdog_interval, write_status
from unit.sources.pushed import QueueSource
from wire import seal

EXAMPLE = Path(__file__).resolve().parents[1] / "unit" / "example-config.toml"


def listen(path: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(5)
    return s


def test_sd_notify_sends_datagrams_to_a_path_socket(tmp_path):
    sock = listen(str(tmp_path / "notify"))
    try:
        env = {"NOTIFY_SOCKET": str(tmp_path / "notify")}
        assert sd_notify("READY=1", env) is True
        assert sd_notify("STATUS=ok; reads 3", env) is True
        assert sock.recv(4096) == b"READY=1"
        assert sock.recv(4096) == b"STATUS=ok; reads 3"
    finally:
        sock.close()


def test_sd_notify_abstract_namespace_and_outside_systemd():
    name = f"alpr-test-{os.getpid()}-{time.monotonic_ns()}"
    sock = listen("\0" + name)
    try:
        assert sd_notify("WATCHDOG=1", {"NOTIFY_SOCKET": "@" + name}) is True
        assert sock.recv(4096) == b"WATCHDOG=1"
    finally:
        sock.close()
    assert sd_notify("READY=1", {}) is False                       # not under systemd: nothing happens
    assert sd_notify("READY=1", {"NOTIFY_SOCKET": "/nonexistent/sock"}) is False


def test_watchdog_interval_is_half_of_watchdog_sec():
    assert watchdog_interval({"WATCHDOG_USEC": "20000000"}) == 10.0
    assert watchdog_interval({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": str(os.getpid())}) == 10.0
    assert watchdog_interval({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "1"}) is None   # meant for another process
    assert watchdog_interval({}) is None


def test_json_logs_one_object_a_line_and_text_for_people():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    stream = io.StringIO()
    logs.setup("INFO", "json", stream)
    try:
        logging.getLogger("unit.test").info("read stored", extra={"fields": {"read_id": "r1", "lane": "in"}})
        logging.getLogger("unit.test").debug("hidden")
        line = json.loads(stream.getvalue().strip())
        assert line["msg"] == "read stored" and line["read_id"] == "r1" and line["level"] == "INFO"
        assert line["ts"].endswith("Z")
        logs.setup("DEBUG", "text", stream)                       # live reload: level and format
        logging.getLogger("unit.test").debug("now shown", extra={"fields": {"lane": "out"}})
        assert stream.getvalue().strip().splitlines()[-1].endswith("now shown  lane=out")
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def test_health_state_and_atomic_status_file(tmp_path):
    h = Health("u1")
    assert h.set("camera", "ok") is True and h.set("camera", "ok") is False
    h.set("model", "error", "FileNotFoundError: detector.tflite")
    h.count("reads", 2)
    state, problems = h.overall()
    assert state == "degraded" and problems == ["model: error (FileNotFoundError: detector.tflite)"]
    assert h.summary().startswith("degraded; reads 2")
    write_status(tmp_path / "s.json", h.snapshot())
    assert json.loads((tmp_path / "s.json").read_text())["parts"]["model"]["state"] == "error"
    assert not (tmp_path / "s.json.tmp").exists()


@pytest.fixture
def unit_cfg(tmp_path):
    key = X25519PrivateKey.generate()
    (tmp_path / "central-seal.pub").write_text(seal.sealing_public_b64(key.public_key()))
    text = (EXAMPLE.read_text().replace("/var/lib/alpr-unit/buffer.sqlite", str(tmp_path / "buf.sqlite"))
            .replace("interval_s = 5", "interval_s = 0.1")
            .replace('model_dir = ""', f'model_dir = "{tmp_path / "no-models"}"'))
    (tmp_path / "unit.toml").write_text(text)
    Device.pin_factory = MockFactory()
    yield tmp_path / "unit.toml"
    Device.pin_factory.reset()


def test_service_notifies_systemd_and_status_command_reports(unit_cfg, tmp_path, capsys):
    from unit.service import Unit
    cfg = load(unit_cfg)
    sock = listen(str(tmp_path / "notify"))
    env = {"NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "200000"}
    unit = Unit(cfg, QueueSource(), env=env)
    unit.start()
    try:
        got = []
        end = time.monotonic() + 5
        while time.monotonic() < end and not (any(m == b"WATCHDOG=1" for m in got) and any(m.startswith(b"STATUS=") for m in got)):
            got.append(sock.recv(4096))
        assert got[0] == b"READY=1"
        assert b"WATCHDOG=1" in got
        statuses = [m.decode() for m in got if m.startswith(b"STATUS=")]
        assert "model: error" in statuses[-1]              # no models in model_dir: degraded, still alive

        pins = Device.pin_factory.pin(17)
        pins.drive_low()                                     # a vehicle on the loop (active low)
        time.sleep(0.3)
        rc = status_command.run(argparse.Namespace(config=str(unit_cfg), json=False))
        out = capsys.readouterr().out
        assert rc == 1                                       # degraded: no model
        assert "unit gate3-east at port-north: degraded (running)" in out
        assert "buffer: 0 unsent" in out and "dropped 0" in out
        assert "lane in: sensor loop ok, triggered by sensor, pin GPIO17, 1 edges" in out
        assert "model: error" in out and "last read: none" in out
        rc = status_command.run(argparse.Namespace(config=str(unit_cfg), json=True))
        st = json.loads(capsys.readouterr().out)
        assert st["buffer"]["depth"] == 0 and st["lanes"]["in"]["active"] is True
    finally:
        unit.stop()
        sock.close()
    st = status.collect(load(unit_cfg))
    assert st["state"] == "stopped" and st["service"] == "stopped"        # a clean stop says so at once
    snap = json.loads(Path(load(unit_cfg).status_path).read_text())
    del snap["stopped_at"]                                              # a killed service never says it
    Path(load(unit_cfg).status_path).write_text(json.dumps(snap))
    st = status.collect(load(unit_cfg), now=time.time() + 3600)
    assert st["state"] == "stopped" and "not running (last status" in st["service"]
