"""`alpr-provision selftest` on a unit with faults: no camera, a dead sensor, no central store.

Each must be a failed check with advice - never a traceback - while what works still passes. GPIO comes
from gpiozero's MockFactory; one lane's loop detector is driven through a vehicle passing, the other
lane's radar stays silent. The camera is the Pi camera, which does not exist here.
"""
from __future__ import annotations

import json
import threading
import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

from provisioning import cli
from unit import identity
from unit.keys import ed25519_key_id, ed25519_public_b64
from unit.layout import Layout
from wire.seal import sealing_key_id, sealing_public_b64
from hil.loopback import free_port


def enrolled_root(tmp_path, url: str):
    """A unit root as `init` + `enroll` leave it, enrolled with a store at `url` (which need not exist)."""
    root = tmp_path / "unit"
    assert cli.main(["init", "--root", str(root), "--unit-id", "gate9"]) == 0
    lay = Layout(root)
    sealing = X25519PrivateKey.generate().public_key()
    signing = Ed25519PrivateKey.generate().public_key()
    lay.seal_pub.write_text(sealing_public_b64(sealing))
    _uid, key = identity.load(lay)
    lay.central_json.write_text(json.dumps({
        "url": url, "unit_id": "gate9", "site": "port-south", "unit_key_id": identity.key_id(key),
        "sealing_public_key": sealing_public_b64(sealing), "sealing_key_id": sealing_key_id(sealing),
        "signing_public_key": ed25519_public_b64(signing), "signing_key_id": ed25519_key_id(signing), "ca_bundle": ""}))
    return root


@pytest.fixture
def pins():
    previous = Device.pin_factory
    Device.pin_factory = MockFactory()
    yield Device.pin_factory
    Device.pin_factory.reset()
    Device.pin_factory = previous


def test_missing_camera_dead_sensor_unreachable_central(tmp_path, pins, capsys):
    root = enrolled_root(tmp_path, f"http://127.0.0.1:{free_port()}")       # nothing listens there
    assert cli.main(["site", "--root", str(root), "--gate", "G9",
                     "--lane", "name=in,direction=in,sensor=loop,pin=17",              # relay: active low, pull-up
                     "--lane", "name=out,direction=out,sensor=radar,pin=27"]) == 0
    capsys.readouterr()

    loop_pin = pins.pin(17)

    def vehicle_passes():
        time.sleep(0.3)
        loop_pin.drive_low()          # vehicle on the loop
        time.sleep(0.2)
        loop_pin.drive_high()         # gone
    threading.Thread(target=vehicle_passes, daemon=True).start()

    code = cli.main(["selftest", "--root", str(root), "--skip", "models", "--sensor-wait", "1.5",
                     "--camera-timeout", "2", "--json"])
    out = capsys.readouterr()
    assert code == 1
    assert "Traceback" not in out.out + out.err
    doc = json.loads(out.out)
    checks = {c["name"]: c for c in doc["checks"]}
    assert doc["ok"] is False
    assert [checks[n]["status"] for n in ("config", "identity", "disk")] == ["pass"] * 3

    cam = checks["camera"]
    assert cam["status"] == "fail" and "picamera2" in cam["detail"] and "apt install python3-picamera2" in cam["advice"]

    assert checks["sensor:in"]["status"] == "pass", checks["sensor:in"]
    dead = checks["sensor:out"]
    assert dead["status"] == "fail" and dead["detail"].startswith("dead sensor: no edge from the radar on GPIO 27")
    assert "radar has power" in dead["advice"] and "pinctrl get 27" in dead["advice"]

    central = checks["central"]
    assert central["status"] == "fail" and "unreachable" in central["detail"] and "firewall" in central["advice"]
    assert checks["clock"]["status"] in ("warn", "pass", "fail") and checks["clock"]["detail"]

    # the same as text: one line per check, advice under each failure, exit 1
    code = cli.main(["selftest", "--root", str(root), "--only", "camera,central"])
    text = capsys.readouterr().out
    assert code == 1 and "FAIL  camera" in text and "FAIL  central" in text
    assert text.count("what to do:") == 2 and "0 passed, 2 failed" in text


def test_sensor_stuck_active_points_at_polarity(tmp_path, pins, capsys):
    root = enrolled_root(tmp_path, "http://127.0.0.1:9")
    # wired as active high with a pull-up: the idle line reads "vehicle present" the whole time
    assert cli.main(["site", "--root", str(root), "--lane", "name=in,sensor=loop,pin=22,active=high,pull=up"]) == 0
    capsys.readouterr()
    assert cli.main(["selftest", "--root", str(root), "--only", "sensors", "--sensor-wait", "0.3", "--json"]) == 1
    checks = {c["name"]: c for c in json.loads(capsys.readouterr().out)["checks"]}
    assert checks["gpio"]["status"] == "pass" and checks["gpio"]["detail"].startswith("backend gpiozero")
    check = checks["sensor:in"]
    assert check["status"] == "fail" and "all the time" in check["detail"] and "active = low" in check["advice"]


def test_selftest_without_provisioning_says_what_to_do(tmp_path, capsys):
    root = tmp_path / "blank"
    code = cli.main(["selftest", "--root", str(root), "--only", "models,disk", "--json"])
    doc = json.loads(capsys.readouterr().out)
    checks = {c["name"]: c for c in doc["checks"]}
    assert code == 1
    assert checks["config"]["status"] == "fail" and "alpr-provision site" in checks["config"]["advice"]
    assert checks["models"]["status"] == "pass" and "4RTA143" in checks["models"]["detail"]   # the bundled plate reads
    assert checks["disk"]["status"] == "skip"
