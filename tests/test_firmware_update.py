"""Signed updates into A/B slots: refusals, install, switch, health wait and automatic rollback.

A temporary folder stands in for the unit's root. The "service" is a real process started by a small
supervisor script (the restart command, as `systemctl restart` would be on a unit) from whatever
`opt/alpr/current/lib` names; the bundles carry a stand-in `unit/cli.py` that writes the status file the
way the real service does (or, for the broken release, never does).
"""
from __future__ import annotations

import io
import json
import os
import shlex
import signal
import sys
import tarfile
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from unit import cli as unit_cli
from unit import update
from unit.keys import ed25519_key_id, ed25519_public_pem, load_ed25519_public
from unit.layout import Layout
from wire.seal import sealing_public_b64

REPO = Path(__file__).resolve().parents[1]

FAKE_SERVICE = '''\
import json, os, sys, time
HEALTHY = {healthy}
VERSION = {version!r}
status = sys.argv[sys.argv.index("--status") + 1]
start = time.time()
if not HEALTHY:
    time.sleep(3600)          # starts, then never reports: the update must be rolled back
while True:
    doc = {{"updated": time.time(), "uptime_s": round(time.time() - start, 2), "pid": os.getpid(),
            "state": "ok", "problems": [], "version": VERSION}}
    with open(status + ".tmp", "w") as f:
        json.dump(doc, f)
    os.replace(status + ".tmp", status)
    time.sleep(0.1)
'''

SUPERVISOR = '''\
import os, signal, subprocess, sys, time
root, status = sys.argv[1], sys.argv[2]
pidfile = os.path.join(root, "service.pid")

def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False

try:
    pid = int(open(pidfile).read())
    os.killpg(pid, signal.SIGKILL)
    for _ in range(200):
        if not alive(pid):
            break
        time.sleep(0.01)
except (OSError, ValueError):
    pass
env = dict(os.environ, PYTHONPATH=os.path.join(root, "opt/alpr/current/lib"))
p = subprocess.Popen([sys.executable, "-m", "unit.cli", "--status", status], env=env, cwd=root,
                     start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
open(pidfile, "w").write(str(p.pid))
'''


def fake_source(tmp: Path, version: str, healthy: bool = True) -> Path:
    src = tmp / f"src-{version}-{'ok' if healthy else 'bad'}"
    (src / "unit").mkdir(parents=True, exist_ok=True)
    (src / "unit" / "__init__.py").write_text("")
    (src / "unit" / "cli.py").write_text(FAKE_SERVICE.format(healthy=healthy, version=version))
    return src


class Unit:
    """A unit root in a temp folder: pinned release key, a config whose status file the fake writes."""

    def __init__(self, tmp: Path, release: Ed25519PrivateKey):
        self.tmp = tmp
        self.root = tmp / "root"
        self.layout = Layout(self.root)
        self.release = release
        etc = self.layout.etc
        etc.mkdir(parents=True)
        self.layout.state.mkdir(parents=True)
        (etc / "release.pub").write_bytes(ed25519_public_pem(release.public_key()))
        (etc / "central-seal.pub").write_text(sealing_public_b64(X25519PrivateKey.generate().public_key()))
        self.status = self.layout.state / "status.json"
        (etc / "config.toml").write_text(f'''
unit_id = "u1"
site = "s1"
[central]
public_key_path = "central-seal.pub"
[buffer]
path = "{self.layout.state / 'buffer.sqlite'}"
[camera]
kind = "replay"
[[lanes]]
name = "in"
[health]
status_path = "{self.status}"
interval_s = 0.2
''')
        sup = tmp / "supervisor.py"
        sup.write_text(SUPERVISOR)
        self.restart = shlex.join([sys.executable, str(sup), str(self.root), str(self.status)])

    def bundle(self, version: str, healthy: bool = True, key: Ed25519PrivateKey | None = None) -> Path:
        out = self.tmp / f"alpr-{version}-{'ok' if healthy else 'bad'}.bundle"
        update.build_bundle(fake_source(self.tmp, version, healthy), key or self.release, out, version=version,
                            packages=("unit",))
        return out

    def apply(self, bundle: Path, *extra: str) -> int:
        return unit_cli.main(["update", "apply", str(bundle), "--root", str(self.root), "--restart-cmd", self.restart,
                              "--health-timeout", "2.5", "--json", *extra])

    def running(self) -> dict:
        """The status of the service running now (written within the last half second)."""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            snap = update.read_status(self.status)
            if snap and time.time() - snap["updated"] < 0.5:
                return snap
            time.sleep(0.05)
        raise AssertionError(f"no service is writing {self.status}")

    def stop(self) -> None:
        try:
            os.killpg(int((self.root / "service.pid").read_text()), signal.SIGKILL)
        except (OSError, ValueError):
            pass


@pytest.fixture
def unit(tmp_path):
    u = Unit(tmp_path, Ed25519PrivateKey.generate())
    yield u
    u.stop()


def result(capsys) -> dict:
    out = capsys.readouterr().out
    return json.loads(out)


def rewrite(bundle: Path, out: Path, change) -> Path:
    """Copy a bundle member by member; `change(name, data)` returns new bytes, or None to drop the member."""
    with tarfile.open(bundle) as src, tarfile.open(out, "w:gz") as dst:
        for m in src.getmembers():
            data = src.extractfile(m).read() if m.isreg() else b""
            new = change(m.name, data)
            if new is None:
                continue
            m.size = len(new)
            dst.addfile(m, io.BytesIO(new))
    return out


def test_update_install_refusals_and_rollback(unit, capsys, tmp_path):
    # first install: no slot yet, goes to slot a and must come up healthy
    v1 = unit.bundle("1.0.0")
    assert unit.apply(v1) == 0, capsys.readouterr()
    assert result(capsys)["result"] == "installed"
    assert update.current_slot(unit.layout) == "a" and unit.running()["version"] == "1.0.0"

    # a newer release goes to the inactive slot, the switch happens, the new code runs
    assert unit.apply(unit.bundle("1.1.0")) == 0
    res = result(capsys)
    assert (res["result"], res["slot"], res["previous_slot"]) == ("installed", "b", "a")
    assert os.readlink(unit.layout.current) == "slots/b"
    assert unit.running()["version"] == "1.1.0"
    pid_before = unit.running()["pid"]

    # refused before anything changes: downgrade, same version, tampered file/manifest, added file, other key
    good = unit.bundle("1.2.0")

    extra = rewrite(good, tmp_path / "t3.bundle", lambda n, d: d)
    with tarfile.open(extra) as src:
        members = [(m, src.extractfile(m).read()) for m in src.getmembers()]
    with tarfile.open(extra, "w:gz") as dst:
        for m, data in members:
            dst.addfile(m, io.BytesIO(data))
        evil = tarfile.TarInfo("payload/lib/unit/backdoor.py")
        evil.size = 4
        dst.addfile(evil, io.BytesIO(b"pass"))
    refusals = {
        "downgrade": (unit.bundle("1.0.5"), "not newer than the running 1.1.0"),
        "same version": (unit.bundle("1.1.0"), "not newer than the running 1.1.0"),
        "tampered file": (rewrite(good, tmp_path / "t1.bundle",
                                  lambda n, d: d.replace(b"sleep(0.1)", b"sleep(9.9)") if n.endswith("unit/cli.py") else d),
                          "does not match its hash"),
        "tampered manifest": (rewrite(good, tmp_path / "t2.bundle",
                                      lambda n, d: d.replace(b'"1.2.0"', b'"9.9.9"') if n == "manifest.json" else d),
                              "signature does not verify"),
        "added file": (extra, "not in its signed manifest"),
        "other key": (unit.bundle("1.3.0", key=Ed25519PrivateKey.generate()), "not by the release key this unit trusts"),
    }
    for name, (bundle, why) in refusals.items():
        assert unit.apply(bundle) == 1, name
        res = result(capsys)
        assert res["result"] == "refused" and why in res["error"], (name, res)
        assert os.readlink(unit.layout.current) == "slots/b", name
    assert unit.running()["pid"] == pid_before                 # nothing was restarted by a refusal
    assert update.slot_info(unit.layout, "a")["version"] == "1.0.0"   # the fallback slot is untouched

    # a release whose service never becomes healthy: rolled back by itself, the old slot runs again
    started = time.time()
    assert unit.apply(unit.bundle("2.0.0", healthy=False)) == 1
    res = result(capsys)
    assert res["result"] == "rolled_back", res
    assert (res["slot"], res["previous_slot"], res["previous_version"]) == ("a", "b", "1.1.0")
    assert os.readlink(unit.layout.current) == "slots/b"
    back = unit.running()
    assert back["version"] == "1.1.0" and back["pid"] != pid_before
    assert back["updated"] - back["uptime_s"] >= started - 1          # a fresh process of the old slot
    state = json.loads(unit.layout.update_state.read_text())
    assert state["state"] == "rolled_back" and state["rollback_ok"] is True

    # the downgrade flag lets an older signed release in on purpose
    assert unit.apply(unit.bundle("1.0.1"), "--allow-downgrade") == 0
    assert result(capsys)["result"] == "installed" and unit.running()["version"] == "1.0.1"

    # status shows both slots; --verify re-hashes the active one
    assert unit_cli.main(["update", "status", "--root", str(unit.root), "--json", "--verify"]) == 0
    st = result(capsys)
    assert st["current"] == "a" and st["slots"]["a"]["version"] == "1.0.1" and st["slots"]["a"]["integrity"] == "ok"
    assert st["slots"]["b"]["state"] == "inactive" and st["slots"]["b"]["version"] == "1.1.0"
    assert st["release_key"] == ed25519_key_id(unit.release.public_key())


def test_interrupted_update_is_rolled_back_at_boot(unit, capsys):
    assert unit.apply(unit.bundle("1.0.0")) == 0
    capsys.readouterr()
    # as if the power went between the switch to slot b and the health confirmation
    update.install_slot(unit.layout, "b", unit.bundle("1.1.0"), unit.release.public_key())
    update._write_json(unit.layout.update_state, {"state": "trying", "from": "a", "to": "b",
                                                  "from_version": "1.0.0", "to_version": "1.1.0"})
    update.switch(unit.layout, "b")
    assert unit_cli.main(["update", "boot-check", "--root", str(unit.root), "--json"]) == 0
    assert result(capsys)["result"] == "rolled_back"
    assert update.current_slot(unit.layout) == "a"
    assert unit_cli.main(["update", "boot-check", "--root", str(unit.root), "--json"]) == 0
    assert result(capsys)["result"] == "ok"                    # nothing left to do on the next boot


def test_verify_cli_and_missing_release_key(unit, capsys, tmp_path):
    good = unit.bundle("1.0.0")
    assert unit_cli.main(["update", "verify", str(good), "--root", str(unit.root)]) == 0
    assert "good, version 1.0.0" in capsys.readouterr().out
    damaged = tmp_path / "damaged.bundle"
    damaged.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    assert unit_cli.main(["update", "verify", str(damaged), "--root", str(unit.root)]) == 1
    assert "damaged" in capsys.readouterr().out
    unit.layout.release_pub.unlink()
    assert unit_cli.main(["update", "verify", str(good), "--root", str(unit.root)]) == 2
    assert "no release key pinned" in capsys.readouterr().out


def test_build_bundle_of_this_repository_installs_and_imports(tmp_path):
    """The real packages: firmware/build-bundle signs them, a slot gets them, and they import from it."""
    import subprocess
    key = tmp_path / "release.pem"
    run = [sys.executable, str(REPO / "firmware" / "build-bundle")]
    assert subprocess.run(run + ["--new-key", str(key)], capture_output=True).returncode == 0
    assert subprocess.run(run + ["--new-key", str(key)], capture_output=True).returncode == 2   # never overwritten
    out = subprocess.run(run + ["--key", str(key), "--version", "3.0.0", "--out", str(tmp_path), "--json"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    bundle = Path(json.loads(out.stdout)["bundle"])
    layout = Layout(tmp_path / "root")
    v = update.install_slot(layout, "a", bundle, load_ed25519_public(key.with_suffix(".pub").read_bytes()))
    paths = {e["path"] for e in v.manifest["files"]}
    assert {"lib/unit/update.py", "lib/wire/read.py", "lib/models/reader.tflite", "lib/provisioning/testplate.jpg"} <= paths
    assert not any("/training/" in p or p.endswith(".pyc") for p in paths)
    assert update.verify_slot(layout, "a") == []
    lib = layout.slot("a") / "lib"
    probe = subprocess.run([sys.executable, "-c", "import unit.cli, provisioning.cli, wire, unit.recognise as r; "
                            "print(r.MODEL_DIR); print(wire.__file__)"],
                           env={**os.environ, "PYTHONPATH": str(lib)}, cwd=tmp_path, capture_output=True, text=True)
    assert probe.returncode == 0, probe.stderr
    model_dir, wire_file = probe.stdout.split()
    assert Path(model_dir).resolve() == (lib / "models").resolve()
    assert Path(wire_file).resolve().is_relative_to(lib.resolve())          # the contract travels in the bundle


def test_release_needing_packages_the_venv_lacks_is_refused(unit, capsys):
    src = fake_source(unit.tmp, "5.0.0")
    (src / "setup.cfg").write_text("[metadata]\nversion = 5.0.0\n[options]\ninstall_requires =\n"
                                   "    requests>=2\n    alpr-no-such-package>=1.0\n")
    bundle = unit.tmp / "needs.bundle"
    update.build_bundle(src, unit.release, bundle, packages=("unit",))
    assert unit.apply(bundle) == 1
    res = result(capsys)
    assert "alpr-no-such-package>=1.0" in res["error"] and "requests" not in res["error"]
    assert update.current_slot(unit.layout) is None and not unit.layout.slots.exists()
