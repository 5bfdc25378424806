"""From a blank unit root to a read stored centrally, against a real central store on loopback.

init -> enroll (token from `alpr-central units enroll-token`) -> site -> selftest -> a replayed still
through the real pipeline into the sealed buffer -> the uplink built from the written config -> the
store holds the read, sealed by the unit to the key enrolment pinned. Refused tokens (used, expired,
from another store) leave nothing pinned and say why.
"""
from __future__ import annotations

import json
import shutil
import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa

from central import cli as central_cli
from central import db, units
from central.keys import load_keys
from provisioning import cli, testplate
from unit.keys import ed25519_key_id, make_release_key
from unit.layout import Layout
from unit.update import pinned_release_key
from unit.buffer import SealedBuffer
from unit.config import load
from unit.replay import replay
from unit.uplink import from_config
from central_fixtures import Store, start_central


def make_store(tmp_path, name: str) -> Store:
    home = tmp_path / name
    url = db.sqlite_url(tmp_path / f"{name}.db")
    assert central_cli.main(["init", "--home", str(home), "--db", url]) == 0
    return Store("sqlite", url, home, db.make_engine(url), load_keys(home / "keys"))


@pytest.fixture
def central(tmp_path):
    c = start_central(make_store(tmp_path, "central"))
    yield c
    c.server.stop()
    c.store.engine.dispose()


def prov(capsys, *argv: str) -> tuple[int, dict | None, str]:
    capsys.readouterr()
    code = cli.main(list(argv))
    out = capsys.readouterr()
    try:
        doc = json.loads(out.out)
    except ValueError:
        doc = None
    return code, doc, out.out + out.err


def token(store: Store, capsys, site: str = "port-north") -> str:
    capsys.readouterr()
    assert store.cli("units", "enroll-token", "--site", site, "--json") == 0
    return json.loads(capsys.readouterr().out)["token"]


def test_blank_unit_to_read_stored_centrally(central, tmp_path, capsys):
    root = tmp_path / "unit"
    store = central.store
    _priv, release_pub, release_id = make_release_key(tmp_path / "release.pem")

    code, doc, _ = prov(capsys, "init", "--root", str(root), "--unit-id", "gate3-east", "--json")
    assert code == 0 and doc["created"] and doc["unit_id"] == "gate3-east"
    code, doc, _ = prov(capsys, "init", "--root", str(root), "--json")         # rerun keeps it
    assert code == 0 and not doc["created"]

    tok = token(store, capsys)
    code, doc, text = prov(capsys, "enroll", "--root", str(root), "--central", central.url, "--token", tok,
                           "--release-key", str(release_pub), "--json")
    assert code == 0, text
    assert (doc["site"], doc["release_key_id"], doc["release_key_source"]) == ("port-north", release_id, "file")
    assert doc["sealing_key_id"] == store.keys.sealing_key_id
    lay = Layout(root)
    assert ed25519_key_id(pinned_release_key(lay)) == release_id
    assert [u["unit_id"] for u in units.list_units(store.engine)] == ["gate3-east"]

    stills = tmp_path / "stills"
    stills.mkdir()
    shutil.copy(testplate.PATH, stills / "car.jpg")
    code, doc, text = prov(capsys, "site", "--root", str(root), "--gate", "G3", "--site", "port-north",
                           "--lane", "name=G3-in,direction=in,sensor=loop,pin=17",
                           "--camera", "replay", "--camera-source", str(stills), "--json")
    assert code == 0, text
    cfg = load(doc["config"])
    assert (cfg.unit_id, cfg.site, cfg.lanes[0].name, cfg.lanes[0].direction) == ("gate3-east", "port-north", "G3-in", "in")
    assert (cfg.lanes[0].sensor.pin, cfg.lanes[0].sensor.active_high, cfg.lanes[0].sensor.pull_up) == (17, False, True)
    assert cfg.central_kid == store.keys.sealing_key_id
    assert cfg.uplink.url == central.url and cfg.uplink.identity_key_path == str(lay.identity_key)
    assert (lay.state / "hotlist.txt").exists()

    code, doc, text = prov(capsys, "selftest", "--root", str(root), "--skip", "sensors", "--json")
    assert code == 0, text
    assert {c["name"]: c["status"] for c in doc["checks"]} == {
        "config": "pass", "identity": "pass", "camera": "pass", "models": "pass", "clock": "pass", "disk": "pass",
        "central": "pass"}

    # the unit replays a vehicle into its sealed buffer, and its uplink delivers it
    _unit, reads = replay(cfg, str(stills))
    assert len(reads) == 1 and reads[0]["read"].plate == testplate.TEXT
    buffer = SealedBuffer(cfg.buffer.path)
    try:
        uplink = from_config(cfg.uplink, cfg.unit_id, buffer)
        uplink.backoff_base_s, uplink.backoff_cap_s, uplink.idle_s = 0.05, 0.3, 0.05
        t = threading.Thread(target=uplink.run, args=(threading.Event(), True), daemon=True)
        t.start()
        t.join(30)
        assert not t.is_alive(), uplink.status()
        assert buffer.stats()["sent"] == 1
    finally:
        buffer.close()
    with store.engine.connect() as conn:
        row = conn.execute(sa.text("SELECT read_id, unit_id, site, lane, direction, plate FROM reads")).one()
    assert tuple(row) == (reads[0]["read"].read_id, "gate3-east", "port-north", "G3-in", "in", testplate.TEXT)


def test_refused_tokens_pin_nothing(central, tmp_path, capsys):
    store = central.store
    _priv, release_pub, _ = make_release_key(tmp_path / "release.pem")
    used = token(store, capsys)
    first = tmp_path / "first"
    assert prov(capsys, "init", "--root", str(first), "--unit-id", "unit-a")[0] == 0
    assert prov(capsys, "enroll", "--root", str(first), "--central", central.url, "--token", used,
                "--release-key", str(release_pub))[0] == 0

    expired, _ = units.make_token(store.engine, "port-north", timedelta(seconds=-1))
    other = make_store(tmp_path, "other-central")
    foreign, _ = units.make_token(other.engine, "port-north", timedelta(hours=1))
    other.engine.dispose()
    # (a url-safe token may start with "-": it must still be read as the token)
    for what, tok in (("used", used), ("expired", expired), ("foreign", foreign), ("dash", "-" + foreign[1:])):
        root = tmp_path / f"unit-{what}"
        assert prov(capsys, "init", "--root", str(root), "--unit-id", f"unit-{what}")[0] == 0
        code, doc, text = prov(capsys, "enroll", "--root", str(root), "--central", central.url, "--token", tok,
                               "--release-key", str(release_pub))
        assert code == 1, (what, text)
        assert "refused the token: it is unknown, expired or already used" in text, what
        assert "alpr-central units enroll-token" in text and "Traceback" not in text
        lay = Layout(root)
        assert not lay.central_json.exists() and not lay.seal_pub.exists() and not lay.release_pub.exists()
    assert [u["unit_id"] for u in units.list_units(store.engine)] == ["unit-a"]

    # enrolled without a release key: it works (exit 0), and says updates need one, pinned later
    root = tmp_path / "unit-nokey"
    assert prov(capsys, "init", "--root", str(root), "--unit-id", "unit-nokey")[0] == 0
    code, doc, text = prov(capsys, "enroll", "--root", str(root), "--central", central.url, "--token",
                           token(store, capsys), "--json")
    assert code == 0 and doc["ok"] and doc["enrolled"] and "problem" not in doc
    assert "updates need one" in doc["note"] and "--release-key release.pub" in doc["note"]
    lay = Layout(root)
    assert lay.seal_pub.exists() and not lay.release_pub.exists()
    code, doc, text = prov(capsys, "enroll", "--root", str(root), "--central", central.url,
                           "--release-key", str(release_pub), "--json")          # no token needed now
    assert code == 0 and not doc["enrolled"] and lay.release_pub.exists(), text

    # a central store that cannot be reached, and a release key that is really a private key
    root = tmp_path / "unit-used"
    code, _, text = prov(capsys, "enroll", "--root", str(root), "--central", "http://127.0.0.1:9", "--token", "x",
                         "--release-key", str(release_pub))
    assert code == 1 and "cannot reach the central store" in text
    code, _, text = prov(capsys, "enroll", "--root", str(root), "--central", central.url, "--token", "x",
                         "--release-key", str(tmp_path / "release.pem"))
    assert code == 2 and "PRIVATE key" in text
