"""A damaged buffer file loses only what is really unreadable, and never silently.

Real SQLite files really scribbled on: a page in the middle of the reads, the 100-byte header. Caught
at open (integrity check) and while running (on a storage error); the file moved aside, a new one
started, what can be read carried over and delivered, what cannot counted as lost in status and the
heartbeat. And no thread of the service dies unseen: a real `alpr-unit run` process whose thread dies
stops feeding systemd's watchdog and exits 1.
"""
from __future__ import annotations

import base64
import json
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

from unit.buffer import SealedBuffer
from unit.config import load
from unit.health import Health
from unit.keys import save_ed25519_private
from unit.sources.pushed import QueueSource
from wire import seal
from wire.read import Read, new_read_id
from wire.times import utc_ms
from central_fixtures import enrol_unit, make_read


ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "unit" / "example-config.toml"
CLIP = ROOT / "hil" / "clips" / "01-day-one-lane"
PAGE = 4096


def a_read(unit_id: str = "gate3-east", site: str = "port-north") -> Read:
    return Read(read_id=new_read_id(), unit_id=unit_id, site=site, lane="in", direction="in",
                captured_at=utc_ms(time.time()), plate="7ABC123", region="us-ca", confidence=0.9,
                candidates=[{"plate": "7ABC123", "score": 0.9}], box=[1, 2, 3, 4], model={"reader": "x"},
                trigger={"sensor": "loop:GPIO17"}, crop_jpeg_b64=base64.b64encode(os.urandom(1200)).decode())


def fill(buf: SealedBuffer, key, n: int) -> list[str]:
    ids = []
    for _ in range(n):
        r = a_read()
        buf.put(r.read_id, r.captured_at, seal.seal(r.to_payload(), key, r.read_id))
        ids.append(r.read_id)
    return ids


def scribble_a_page_of_reads(path: Path, seed: int = 7) -> int:
    """Overwrite, with random bytes, a page in the middle of the file that holds read rows (a table
    page: its cells carry the envelope's JSON, which the read_id index pages do not)."""
    data = path.read_bytes()
    pages = [i for i in range(1, len(data) // PAGE) if b'"epk"' in data[i * PAGE:(i + 1) * PAGE]]
    assert len(pages) > 10, "the file is too small for the test to mean anything"
    victim = pages[len(pages) // 2]
    with open(path, "r+b") as f:
        f.seek(victim * PAGE)
        f.write(random.Random(seed).randbytes(PAGE))
        f.flush()
        os.fsync(f.fileno())
    return victim


def opened_ids(buf: SealedBuffer, key) -> set[str]:
    """The pending reads, each opened with the central key (a half-read envelope would not open)."""
    out = set()
    for r in buf.pending(100000):
        assert seal.open_sealed(r.envelope, key, r.read_id)["read_id"] == r.read_id
        out.add(r.read_id)
    return out


@pytest.fixture
def cfgfile(tmp_path):
    key = X25519PrivateKey.generate()
    (tmp_path / "central-seal.pub").write_text(seal.sealing_public_b64(key.public_key()))
    text = (EXAMPLE.read_text().replace("/var/lib/alpr-unit/buffer.sqlite", str(tmp_path / "buf.sqlite"))
            .replace('model_dir = ""', f'model_dir = "{tmp_path / "no-models"}"'))
    (tmp_path / "unit.toml").write_text(text)
    Device.pin_factory = MockFactory()
    yield tmp_path / "unit.toml", key
    Device.pin_factory.reset()


def test_a_scribbled_page_is_caught_at_open_and_the_rest_carried_over(cfgfile, caplog):
    from unit.service import open_buffer
    path, key = cfgfile
    cfg = load(path)
    buf = SealedBuffer(cfg.buffer.path)
    ids = fill(buf, key.public_key(), 240)
    buf.mark_sent(ids[:40])                                # delivered: not to be carried over
    buf.quarantine(ids[40], "rejected by central")
    buf.close()
    scribble_a_page_of_reads(Path(cfg.buffer.path))

    health = Health("u")
    new = open_buffer(cfg, health)
    assert new is not None
    part = health.get("buffer")
    assert part["state"] == "recovered" and health.overall()[0] == "degraded"
    carried = opened_ids(new, key)
    st = new.stats()
    assert 0 < st["lost"] < 10 and st["lost_unknown"] == 0          # a page holds a read or two
    assert carried <= set(ids[41:]) and len(carried) + st["lost"] == 199
    assert new.get(ids[40]) is None or new.get(ids[40])["state"] == "quarantined"
    assert st["salvaged"] == len(carried) + (new.get(ids[40]) is not None)
    assert (part["salvaged"], part["lost"]) == (st["salvaged"], st["lost"])
    assert not any(new.get(r) for r in ids[:40])
    kept = list(Path(cfg.buffer.path).parent.glob("buf.sqlite.corrupt-*"))
    assert [p.name for p in kept if p.suffix != ".repaired"] and not [p for p in kept if "repaired" in p.name]
    assert any("is corrupt" in r.getMessage() for r in caplog.records)
    assert any(f"{st['lost']} unsent reads lost" in r.getMessage() for r in caplog.records)
    fill(new, key.public_key(), 1)
    assert new.check() == []
    new.close()


def test_a_damaged_header_is_rebuilt_and_every_read_carried_over(cfgfile):
    from unit.service import open_buffer
    path, key = cfgfile
    cfg = load(path)
    buf = SealedBuffer(cfg.buffer.path)
    ids = fill(buf, key.public_key(), 120)
    buf.close()
    with open(cfg.buffer.path, "r+b") as f:
        f.write(b"scribbled over the header by a failing SD card " * 2 + b"!!!!")
    health = Health("u")
    new = open_buffer(cfg, health)
    assert health.get("buffer")["state"] == "recovered"
    assert opened_ids(new, key) == set(ids)
    assert new.stats()["lost"] == 0 and new.stats()["salvaged"] == 120
    new.close()


def test_a_killed_writer_s_wal_is_read_back_too(tmp_path):
    """Reads still only in the WAL (the writer was killed, nothing checkpointed) come back as well."""
    from unit import salvage
    key = X25519PrivateKey.generate().public_key()
    path = tmp_path / "b.sqlite"
    buf = SealedBuffer(path)
    ids = fill(buf, key, 30)
    wal = Path(f"{path}-wal")
    assert wal.stat().st_size > 0                          # not closed: the reads sit in the WAL
    with open(path, "r+b") as f:
        f.write(b"\0" * 100)
    aside = salvage.move_aside(path)
    found = salvage.salvage(aside)
    buf._conn.close()
    assert {r["read_id"] for r in found.rows} == set(ids) and found.lost == 0


def test_corruption_found_while_running_is_recovered_and_the_new_read_kept(cfgfile, caplog):
    from unit.service import Unit, _UnitBuffer
    path, key = cfgfile
    unit = Unit(load(path), QueueSource(), env={})
    old = unit.buffer
    ids = fill(old, key.public_key(), 240)
    # a unit's buffer is far larger than SQLite's page cache: the damaged page is read from the card
    old._conn.execute("PRAGMA cache_size = 10")
    scribble_a_page_of_reads(Path(unit.cfg.buffer.path))
    read = a_read()
    assert unit.stage.store(read)                           # stored, in the buffer that replaced the old one
    new = unit.buffer
    assert new is not old and unit.stage.buffer is new
    assert unit.health.get("buffer")["state"] == "recovered"
    assert new.get(read.read_id)["state"] == "pending"
    carried = opened_ids(new, key) - {read.read_id}
    st = new.stats()
    assert carried <= set(ids) and st["lost"] > 0 and len(carried) + st["lost"] == 240
    assert len(_UnitBuffer(unit).pending(1000)) == len(carried) + 1      # the uplink sees the new buffer
    assert unit.health.counters.get("store_failed", 0) == 0
    unit.stop()


def listen(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.2)
    return sock


def unit_config(tmp_path: Path, sealing_b64: str, url: str, key_path: Path, unit_id: str, site: str) -> Path:
    """The example config, as a unit at a gate that replays the demo clip in real time, with an uplink."""
    (tmp_path / "central-seal.pub").write_text(sealing_b64)
    text = EXAMPLE.read_text()
    for old, new in (('unit_id = "gate3-east"', f'unit_id = "{unit_id}"'), ('site = "port-north"', f'site = "{site}"'),
                     ("/var/lib/alpr-unit/buffer.sqlite", str(tmp_path / "buf.sqlite")),
                     ('kind = "picamera2"', 'kind = "replay"'),
                     ('path = ""                    # a clip folder', f'path = "{CLIP}"  # a clip folder'),
                     ('format = "json"', 'format = "text"'), ("interval_s = 5", "interval_s = 0.2")):
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    text = text[:text.index("[uplink]")]
    text += (f'\n[uplink]\nurl = "{url}"\nidentity_key_path = "{key_path}"\nidle_s = 0.1\nbackoff_base_s = 0.1\n'
             'backoff_cap_s = 0.5\nheartbeat_interval_s = 0.5\ndrain_s = 20\n')
    (tmp_path / "unit.toml").write_text(text)
    return tmp_path / "unit.toml"


def test_a_unit_started_on_a_damaged_buffer_delivers_what_it_salvaged(central, tmp_path):
    """A real `alpr-unit run` process on a buffer with a scribbled page, against a real central store:
    the readable reads arrive, the lost ones are counted in status and in the store's heartbeat."""
    store = central.store
    enrolled = enrol_unit(central.url, store, unit_id="gate3-east", site="port-north")
    save_ed25519_private(tmp_path / "identity.key", enrolled.key)
    cfg_path = unit_config(tmp_path, seal.sealing_public_b64(enrolled.sealing_key), central.url,
                           tmp_path / "identity.key", enrolled.unit_id, enrolled.site)
    buf = SealedBuffer(tmp_path / "buf.sqlite")
    ids = []
    for _ in range(200):
        r = make_read(enrolled)
        buf.put(*r)
        ids.append(r[0])
    buf.close()
    scribble_a_page_of_reads(tmp_path / "buf.sqlite")

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "unit.cli", "run", "--config", str(cfg_path)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "is corrupt" in proc.stderr and "Traceback" not in proc.stderr

    st = subprocess.run([sys.executable, "-m", "unit.cli", "status", "--config", str(cfg_path), "--json"], cwd=ROOT,
                        env=env, capture_output=True, text=True, timeout=60)
    buffer = json.loads(st.stdout)["buffer"]
    lost = buffer["lost"]
    held = set(store.read_ids())
    assert 0 < lost < 10 and len(held & set(ids)) == 200 - lost == buffer["salvaged"]
    assert buffer["depth"] == 0
    text = subprocess.run([sys.executable, "-m", "unit.cli", "status", "--config", str(cfg_path)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60).stdout
    assert f"{200 - lost} reads carried over, {lost} unsent reads lost" in text
    import sqlalchemy as sa
    with store.engine.connect() as conn:
        bodies = [row[0] for row in conn.execute(sa.text("SELECT body FROM heartbeats ORDER BY received_at"))]
    bodies = [json.loads(b) if isinstance(b, str) else b for b in bodies]
    assert bodies and bodies[-1]["queue"]["lost"] == lost


BOOM = """
import sys
import unit.heartbeat
def boom(self, stop):
    raise RuntimeError("a bug in the heartbeat")
unit.heartbeat.Heartbeat.run = boom
from unit.cli import main
sys.exit(main(["run", "--config", sys.argv[1]]))
"""


def test_a_thread_that_dies_stops_the_watchdog_and_the_service_exits_1(tmp_path):
    """A real process whose heartbeat thread raises (a bug, put there by the test): the death is logged,
    health says failed, WATCHDOG=1 stops, and the process stops by itself with exit status 1."""
    key = X25519PrivateKey.generate()
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    save_ed25519_private(tmp_path / "identity.key", Ed25519PrivateKey.generate())
    cfg_path = unit_config(tmp_path, seal.sealing_public_b64(key.public_key()), "http://127.0.0.1:9",
                           tmp_path / "identity.key", "gate3-east", "port-north")
    sock = listen(str(tmp_path / "notify"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NOTIFY_SOCKET": str(tmp_path / "notify"),
           "WATCHDOG_USEC": "200000"}
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-c", BOOM, str(cfg_path)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    got: list[tuple[float, bytes]] = []
    while proc.poll() is None and time.monotonic() - start < 60:
        try:
            got.append((time.monotonic(), sock.recv(4096)))
        except socket.timeout:
            pass
    out, err = proc.communicate(timeout=30)
    sock.close()
    assert proc.returncode == 1, err[-3000:]
    assert "heartbeat thread died (RuntimeError: a bug in the heartbeat)" in err
    assert time.monotonic() - start < 7.5 + 20                # it did not wait for the clip to end
    messages = [m for _, m in got]
    assert messages[0] == b"READY=1"
    failed_at = next(t for t, m in got if m.startswith(b"STATUS=failed"))
    assert not [m for t, m in got if t > failed_at + 0.05 and m == b"WATCHDOG=1"]
    assert b"STATUS=failed" in b"".join(messages) and b"thread:heartbeat: failed" in b"".join(messages)
