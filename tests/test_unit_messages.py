"""What a newcomer sees: plain sentences, each said once. The store not reachable (status), no GPIO on
this machine (one line, only where lanes have sensors, none of gpiozero's fallback warnings), no LiteRT
banner, lanes whose regions overlap (warned when the service starts)."""
from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from gpiozero import Device

from unit import cli, sensors
from unit.buffer import SealedBuffer
from unit.config import LaneConfig, MotionConfig, SensorConfig, load
from unit.service import uplink_state_path
from unit.uplink import Uplink
from wire import seal
from hil.loopback import free_port

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "unit" / "example-config.toml"
CLIP = ROOT / "hil" / "clips" / "01-day-one-lane"


def config(tmp_path: Path, *replace: tuple[str, str]) -> Path:
    (tmp_path / "central-seal.pub").write_text(seal.sealing_public_b64(X25519PrivateKey.generate().public_key()))
    text = EXAMPLE.read_text()
    for old, new in ((("/var/lib/alpr-unit/buffer.sqlite", str(tmp_path / "buf.sqlite")),) + replace):
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    (tmp_path / "unit.toml").write_text(text)
    return tmp_path / "unit.toml"


def test_status_says_plainly_that_the_store_cannot_be_reached(tmp_path, capsys):
    port = free_port()                                     # nothing listens there
    cfg = load(config(tmp_path, ('url = "https://central.example.org:8443"', f'url = "http://127.0.0.1:{port}"')))
    buf = SealedBuffer(cfg.buffer.path)
    buf.put("8b0c3c52-2f4c-4c3e-9a52-0f6f8c1a2b3c", "2026-03-01T12:00:00.000Z", {"v": 1, "ct": "AAAA"})
    up = Uplink(cfg.uplink.url, cfg.unit_id, Ed25519PrivateKey.generate(), buf, timeout=(0.5, 0.5),
                backoff_base_s=0.05, backoff_cap_s=0.05, state_path=uplink_state_path(cfg))
    out = up.push_once()
    want = f"central store not reachable at http://127.0.0.1:{port}: connection refused (is the store running, on this port?)"
    assert out.error == want
    stop = threading.Event()
    runner = threading.Thread(target=up.run, args=(stop,))
    runner.start()
    stop.wait(0.3)
    stop.set()
    runner.join(5)
    assert cli.main(["status", "--config", str(cfg.path)]) == 1
    text = capsys.readouterr().out
    assert f"last error {want}" in text
    assert "HTTPConnectionPool" not in text and "Max retries" not in text and "object at 0x" not in text

    # a store that takes the connection and never answers
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    up.client.base_url = f"http://127.0.0.1:{silent.getsockname()[1]}"
    try:
        assert up.push_once().error == f"central store at {up.client.base_url} did not answer within 0.5 s"
    finally:
        silent.close()
    buf.close()


@pytest.fixture
def no_pins():
    previous = Device.pin_factory
    Device.pin_factory = None
    sensors._no_gpio = None
    yield
    if Device.pin_factory is not None:
        Device.pin_factory.close()
    Device.pin_factory = previous
    sensors._no_gpio = None


@pytest.mark.skipif(Path("/dev/gpiomem").exists(), reason="this machine has GPIO")
def test_no_gpio_is_said_once_and_only_for_lanes_with_sensors(no_pins, caplog):
    caplog.set_level(logging.INFO)
    motion = MotionConfig()
    emit = lambda p: None   # noqa: E731
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        plain = sensors.Lane(LaneConfig(name="a"), motion, emit)          # no sensor: nothing said
        assert not caplog.records and plain.sensor_state(0) == "none"
        lanes = [sensors.Lane(LaneConfig(name=n, sensor=SensorConfig(kind="loop", pin=p)), motion, emit)
                 for n, p in (("in", 17), ("out", 27))]
    assert not shown                                       # none of gpiozero's four PinFactoryFallback warnings
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and said[0].startswith("no GPIO on this machine") and "triggered by motion" in said[0]
    assert all(lane.sensor_state(0) == "failed" and lane.mode(0) == "motion" for lane in lanes)
    assert all(lane.health(0)["detail"].startswith("no GPIO on this machine") for lane in lanes)


@pytest.mark.skipif(Path("/dev/gpiomem").exists(), reason="this machine has GPIO")
def test_a_unit_run_here_says_no_gpio_once_and_shows_no_runtime_banner(tmp_path):
    """A real `alpr-unit run` on this machine (no GPIO), two lanes with sensors whose regions overlap,
    the demo clip as its camera: its whole stderr."""
    path = config(tmp_path, ('kind = "picamera2"', 'kind = "replay"'),
                  ('path = ""                    # a clip folder', f'path = "{CLIP}"  # a clip folder'),
                  ("roi = [0.5, 0.3, 1.0, 1.0]", "roi = [0.4, 0.3, 1.0, 1.0]"),
                  ('format = "json"', 'format = "text"'), ('url = "https://central.example.org:8443"', 'url = ""'))
    proc = subprocess.run([sys.executable, "-m", "unit.cli", "run", "--config", str(path)], cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    err = proc.stderr
    assert err.count("no GPIO on this machine") == 1
    assert "PinFactoryFallback" not in err and "Falling back from" not in err and "BadPinFactory" not in err
    assert "TensorFlow Lite" not in err and "XNNPACK" not in err
    assert err.count("their regions (roi) overlap") == 1 and "lanes[0] 'in' and lanes[1] 'out'" in err
    assert "Traceback" not in err
