"""The sealed buffer: contract, bounds, durability under kill -9, and that it cannot be opened without
the central private key. Real SQLite files, real processes, real keys."""
from __future__ import annotations

import base64
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives import serialization

from unit.buffer import BufferFull, SealedBuffer, read_stats
from wire import seal
from wire.read import Read, new_read_id, validate
from wire.times import utc_ms

ROOT = Path(__file__).resolve().parents[1]


class Clock:
    def __init__(self, t: float = 1_700_000_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def envelope(n: int = 50) -> dict:
    return {"v": 1, "kid": "k", "epk": "e", "nonce": "n", "ct": "x" * n}


def make_read(plate: str = "7ABC123", lane: str = "in") -> Read:
    rid = new_read_id()
    crop = base64.b64encode(b"\xff\xd8JPEGCROPBYTES-" + plate.encode() + os.urandom(64)).decode()
    return Read(read_id=rid, unit_id="gate3", site="north", lane=lane, direction="in",
                captured_at=utc_ms(time.time()), plate=plate, region="us-ca", confidence=0.91,
                candidates=[{"plate": plate, "score": 0.91}], box=[10, 20, 110, 50],
                model={"detector": "t", "reader": "t"}, trigger={"sensor": "loop:GPIO17", "kind": "sensor"},
                crop_jpeg_b64=crop)


def test_contract_put_pending_mark_stats(tmp_path):
    clock = Clock()
    buf = SealedBuffer(tmp_path / "b.sqlite", clock=clock, monotonic=clock)
    ids = [new_read_id() for _ in range(5)]
    for i, rid in enumerate(ids):
        clock.t += 1
        buf.put(rid, utc_ms(clock.t), envelope())
    buf.put(ids[0], utc_ms(clock.t), envelope(999))            # same read_id again: idempotent
    assert [r.read_id for r in buf.pending()] == ids
    assert [r.read_id for r in buf.pending(limit=2)] == ids[:2]
    first = buf.pending(1)[0]
    assert first.envelope == envelope() and first.attempts == 0 and first.size > 50

    buf.mark_attempt(ids[:2])
    buf.mark_attempt(ids[:1])
    assert [r.attempts for r in buf.pending(3)] == [2, 1, 0]
    buf.mark_sent(ids[:2])
    buf.mark_sent(ids[:1])                                      # acknowledged twice counts once
    buf.quarantine(ids[2], "schema_version: expected 1")
    assert [r.read_id for r in buf.pending()] == ids[3:]
    assert buf.get(ids[2])["reason"] == "schema_version: expected 1"

    clock.t += 10
    st = buf.stats()
    assert st["depth"] == 2 and st["sent"] == 2 and st["quarantined"] == 1 and st["dropped"] == 0
    assert st["oldest_unsent_age_s"] == pytest.approx(11.0)
    assert st["bytes"] == sum(buf.get(r)["size"] for r in ids)
    assert buf.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    buf.close()
    # another process's view (alpr-unit status) agrees, read-only
    assert read_stats(tmp_path / "b.sqlite")["depth"] == 2


def test_byte_bound_evicts_acknowledged_first_then_oldest_unsent_counted(tmp_path):
    clock = Clock()
    one = len(json.dumps(envelope(), separators=(",", ":"))) + 36 + 24
    buf = SealedBuffer(tmp_path / "b.sqlite", max_bytes=one * 4, clock=clock, monotonic=clock)
    ids = [new_read_id() for _ in range(8)]
    for rid in ids[:4]:
        clock.t += 1
        buf.put(rid, utc_ms(clock.t), envelope())
    buf.mark_sent([ids[1], ids[3]])          # acknowledged ones are newer than ids[0]
    for rid in ids[4:6]:
        clock.t += 1
        buf.put(rid, utc_ms(clock.t), envelope())
    # the two acknowledged went first, no unsent read dropped
    assert [r.read_id for r in buf.pending()] == [ids[0], ids[2], ids[4], ids[5]]
    assert buf.stats()["dropped"] == 0 and buf.stats()["evicted"] == 2
    for rid in ids[6:]:
        clock.t += 1
        buf.put(rid, utc_ms(clock.t), envelope())
    # now only unsent remain: the oldest go, each counted
    assert [r.read_id for r in buf.pending()] == ids[4:]
    st = buf.stats()
    assert st["dropped"] == 2 and st["dropped_bytes"] == 2 and st["bytes"] <= one * 4


def test_age_bound(tmp_path):
    clock = Clock()
    buf = SealedBuffer(tmp_path / "b.sqlite", max_age_s=100, clock=clock, monotonic=clock)
    old_sent, old_unsent, fresh = new_read_id(), new_read_id(), new_read_id()
    buf.put(old_sent, utc_ms(clock.t), envelope())
    buf.put(old_unsent, utc_ms(clock.t), envelope())
    buf.mark_sent([old_sent])
    clock.t += 150
    buf.put(fresh, utc_ms(clock.t), envelope())
    assert [r.read_id for r in buf.pending()] == [fresh]
    assert buf.get(old_sent) is None
    st = buf.stats()
    assert st["dropped_age"] == 1 and st["dropped"] == 1 and st["evicted"] == 1


def test_durable_across_reopen(tmp_path):
    path = tmp_path / "b.sqlite"
    buf = SealedBuffer(path)
    rid = new_read_id()
    buf.put(rid, "2024-05-01T10:00:00.000Z", envelope())
    # no close(): the process just goes away
    del buf
    again = SealedBuffer(path)
    assert again.pending()[0].read_id == rid
    assert again.db.execute("PRAGMA synchronous").fetchone()[0] == 2     # FULL


def test_full_disk_is_a_clear_error_and_acknowledged_reads_make_room(tmp_path):
    buf = SealedBuffer(tmp_path / "b.sqlite")
    for _ in range(3):
        buf.put(new_read_id(), "2024-05-01T10:00:00.000Z", envelope(3000))
    page_count = buf.db.execute("PRAGMA page_count").fetchone()[0]
    buf.db.execute(f"PRAGMA max_page_count = {page_count + 1}")     # the disk is now (nearly) full
    with pytest.raises(BufferFull, match="disk full"):
        for _ in range(20):
            buf.put(new_read_id(), "2024-05-01T10:00:00.000Z", envelope(3000))
    depth = buf.stats()["depth"]
    # the uplink gets everything acknowledged: the next put frees those rows and succeeds
    buf.mark_sent([r.read_id for r in buf.pending(1000)])
    rid = new_read_id()
    buf.put(rid, "2024-05-01T10:00:00.000Z", envelope(3000))
    assert [r.read_id for r in buf.pending()] == [rid]
    assert buf.stats()["sent"] == depth


WRITER = textwrap.dedent("""
    import os, sys, time
    from wire import seal
    from unit.buffer import SealedBuffer
    from wire.read import new_read_id
    from wire.times import utc_ms
    pub = seal.load_sealing_public(sys.argv[2])
    buf = SealedBuffer(sys.argv[1])
    print("ready", flush=True)
    while True:
        rid = new_read_id()
        payload = {"read_id": rid, "plate": "KILL9", "crop": os.urandom(1500).hex()}
        buf.put(rid, utc_ms(time.time()), seal.seal(payload, pub, rid))
        print(rid, flush=True)
""")


def test_kill_minus_9_loses_nothing_reported_and_leaves_nothing_half_written(tmp_path):
    central = X25519PrivateKey.generate()
    pub = seal.sealing_public_b64(central.public_key())
    path = tmp_path / "b.sqlite"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    rng = random.Random(1234)
    reported: set[str] = set()
    rounds = 15
    for i in range(rounds):
        child = subprocess.Popen([sys.executable, "-c", WRITER, str(path), pub], stdout=subprocess.PIPE,
                                 env=env, cwd=str(ROOT))
        # every third kill lands whenever it lands, often while the buffer opens (and recovers the WAL);
        # the others during the stream of writes, at any point of a transaction (however slowly this
        # machine starts a Python process: they wait for "ready")
        head = b""
        if i % 3:
            head = child.stdout.readline()
            assert head == b"ready\n", head
        time.sleep(rng.uniform(0.2, 0.8) if i % 3 == 0 else rng.uniform(0.05, 0.4))
        os.kill(child.pid, signal.SIGKILL)
        out, _ = child.communicate()
        assert child.returncode == -signal.SIGKILL
        # a line without its newline was cut mid-print: its put() may or may not have returned
        lines = (head + out).decode().split("\n")
        reported.update(line for line in lines[:-1] if line and line != "ready")
        # restart: the buffer opens, holds every read that was reported stored, and each is whole
        buf = SealedBuffer(path)
        assert buf.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = {r.read_id: r for r in buf.pending(100000)}
        assert reported <= set(stored)
        for rid, r in stored.items():
            payload = seal.open_sealed(r.envelope, central, rid)      # raises if anything is half-written
            assert payload["read_id"] == rid and len(payload["crop"]) == 3000
        assert buf.stats()["stored"] == len(stored)
        buf.close()
    assert len(reported) > rounds        # the kills did land during a stream of writes


def test_buffer_and_whole_config_without_central_private_key_decrypt_nothing(tmp_path):
    central = X25519PrivateKey.generate()
    central_pub = central.public_key()
    identity = Ed25519PrivateKey.generate()      # the unit's own key, also on the SD card
    (tmp_path / "identity.key").write_bytes(identity.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    pub_b64 = seal.sealing_public_b64(central_pub)
    (tmp_path / "central-seal.pub").write_text(pub_b64)
    path = tmp_path / "b.sqlite"
    buf = SealedBuffer(path)
    reads = [make_read(p) for p in ("7ABC123", "8XYZ987", "4KLM555")]
    for r in reads:
        validate(r.to_payload())
        buf.put(r.read_id, r.captured_at, seal.seal(r.to_payload(), central_pub, r.read_id))
    buf.close()
    # the attacker has the buffer file(s) and everything the unit config points at
    raw = b"".join(Path(f"{path}{s}").read_bytes() for s in ("", "-wal", "-shm") if Path(f"{path}{s}").exists())
    for r in reads:
        assert r.plate.encode() not in raw
        assert r.crop_jpeg_b64[:24].encode() not in raw
        assert base64.b64decode(r.crop_jpeg_b64)[:24] not in raw
    assert b"JPEGCROPBYTES" not in raw

    ident_raw = identity.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                       serialization.NoEncryption())
    pub_raw = seal.raw_sealing_public(seal.load_sealing_public((tmp_path / "central-seal.pub").read_text()))
    guesses = [X25519PrivateKey.generate(), X25519PrivateKey.from_private_bytes(pub_raw),
               X25519PrivateKey.from_private_bytes(ident_raw)]
    buf = SealedBuffer(path)
    rows = buf.pending()
    assert len(rows) == 3
    for row in rows:
        for guess in guesses:
            with pytest.raises(seal.SealError):
                seal.open_sealed(row.envelope, guess, row.read_id)
            # even ignoring the key-id check, the AEAD refuses a key derived from anything the unit has
            epk = base64.b64decode(row.envelope["epk"])
            shared = guess.exchange(central_pub)
            key = HKDF(algorithm=hashes.SHA256(), length=32, salt=epk + pub_raw, info=seal.INFO).derive(shared)
            with pytest.raises(InvalidTag):
                AESGCM(key).decrypt(base64.b64decode(row.envelope["nonce"]), base64.b64decode(row.envelope["ct"]),
                                    row.read_id.encode())
        # the control: with the central private key it opens
        assert seal.open_sealed(row.envelope, central, row.read_id)["plate"] in {r.plate for r in reads}
