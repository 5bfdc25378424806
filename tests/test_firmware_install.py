"""firmware/install.sh into a throwaway root, twice, and the systemd files it installs.

What cannot run off a Pi is replaced through the script's environment hooks: apt-get, useradd/usermod
(the stand-ins edit the target's own passwd/group files, as `useradd --prefix` would) and pip (the
dependencies are not downloaded). The venv is real (made without pip), the owners are set for real by
number, and `systemctl --root` really enables the units in the target tree.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIRMWARE = REPO / "firmware"

USERADD = """#!/bin/sh
echo "useradd $*" >> "$CALLS"
while [ "$1" != "--prefix" ]; do shift; done; P=$2; eval "U=\\${$#}"
echo "$U:x:990:990::/var/lib/alpr-unit:/usr/sbin/nologin" >> "$P/etc/passwd"
echo "$U:x:990:" >> "$P/etc/group"
"""
USERMOD = """#!/bin/sh
echo "usermod $*" >> "$CALLS"
P=$2; G=$5; U=$6
sed -i -e "/^$G:/{s/:\\$/:$U/;t" -e "s/\\$/,$U/}" "$P/etc/group"
"""
LOG_ONLY = """#!/bin/sh
echo "$(basename "$0") $*" >> "$CALLS"
"""


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under root: kind, mode, owner and content hash or link target."""
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = ("link", os.readlink(p))
        elif p.is_dir():
            out[rel] = ("dir", stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
        else:
            out[rel] = ("file", stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
                        hashlib.sha256(p.read_bytes()).hexdigest())
    return out


@pytest.fixture
def target(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\nvideo:x:44:\ngpio:x:997:pi\n")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name, body in (("useradd", USERADD), ("usermod", USERMOD), ("pip", LOG_ONLY), ("apt-get", LOG_ONLY),
                       ("systemctl", LOG_ONLY), ("chown", LOG_ONLY)):
        (bindir / name).write_text(body)
        (bindir / name).chmod(0o755)
    calls = tmp_path / "calls.log"
    env = {**os.environ, "CALLS": str(calls), "USERADD": str(bindir / "useradd"), "USERMOD": str(bindir / "usermod"),
           "ALPR_PIP": str(bindir / "pip"), "APT_GET": str(bindir / "apt-get"), "ALPR_VENV_FLAGS": "--without-pip",
           "PYTHON": shutil.which("python3") or sys.executable}
    if not shutil.which("systemctl"):
        env["SYSTEMCTL"] = str(bindir / "systemctl")
    if os.geteuid() != 0:                    # owners can only be set for real as root
        env["CHOWN"] = str(bindir / "chown")
    return root, env, calls


def install(root: Path, env: dict, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(FIRMWARE / "install.sh"), "--prefix", str(root), *extra], env=env,
                          capture_output=True, text=True, timeout=120)


def test_install_into_throwaway_root_is_complete_and_idempotent(target):
    root, env, calls = target
    first = install(root, env, "--apt")
    assert first.returncode == 0, first.stderr + first.stdout
    log = calls.read_text()
    assert "apt-get install -y --no-install-recommends python3-venv python3-picamera2 python3-lgpio" in log
    assert log.count("useradd ") == 1 and "--system" in log and "--shell /usr/sbin/nologin" in log
    assert "alpr" in (root / "etc/group").read_text().split("video:x:44:")[1].splitlines()[0]
    assert "pi,alpr" in (root / "etc/group").read_text()
    assert log.count("pip install") == 1 and "constraints-pi.txt" in log

    # the venv sees the system's picamera2 and lgpio
    cfg = (root / "opt/alpr/venv/pyvenv.cfg").read_text()
    assert "include-system-site-packages = true" in cfg
    reqs = (root / "opt/alpr/venv/alpr-requirements.txt").read_text()
    assert "gpiozero" in reqs and "cryptography" in reqs and "numpy>=1.24,<2" in reqs
    assert "fastapi" not in reqs.lower() and "sqlalchemy" not in reqs.lower()     # the unit's role only

    # directories: identity root only, config readable by the service group, state owned by the service
    def mode(rel):
        return stat.S_IMODE((root / rel).stat().st_mode)
    assert mode("etc/alpr-unit/identity") == 0o700
    assert mode("etc/alpr-unit") == 0o750 and mode("var/lib/alpr-unit") == 0o750
    if os.geteuid() == 0:
        assert (root / "var/lib/alpr-unit").stat().st_uid == 990
        assert (root / "etc/alpr-unit").stat().st_gid == 990 and (root / "etc/alpr-unit/identity").stat().st_uid == 0

    # code in slot a, current -> slots/a, commands that run from current
    assert os.readlink(root / "opt/alpr/current") == "slots/a"
    lib = root / "opt/alpr/slots/a/lib"
    assert (lib / "unit/update.py").is_file() and (lib / "wire/read.py").is_file() and (lib / "models/reader.tflite").is_file()
    assert not (lib / "models/training").exists() and not list(lib.rglob("__pycache__"))
    assert '"source": "install.sh"' in (root / "opt/alpr/slots/a/slot.json").read_text()
    wrapper = (root / "usr/local/bin/alpr-unit").read_text()
    assert "PYTHONPATH=/opt/alpr/current/lib" in wrapper and "/opt/alpr/venv/bin/python -m unit.cli" in wrapper
    assert os.access(root / "usr/local/bin/alpr-provision", os.X_OK)

    # systemd files as shipped, enabled
    for rel, src in (("etc/systemd/system/alpr-unit.service", "systemd/alpr-unit.service"),
                     ("etc/systemd/system/alpr-unit-update-check.service", "systemd/alpr-unit-update-check.service"),
                     ("etc/systemd/system.conf.d/50-alpr-watchdog.conf", "systemd/50-alpr-watchdog.conf"),
                     ("etc/systemd/journald.conf.d/50-alpr-journald.conf", "systemd/50-alpr-journald.conf")):
        assert (root / rel).read_bytes() == (FIRMWARE / src).read_bytes(), rel
    if "SYSTEMCTL" not in env:
        wants = root / "etc/systemd/system/multi-user.target.wants"
        assert os.readlink(wants / "alpr-unit.service") == "/etc/systemd/system/alpr-unit.service"
        assert (wants / "alpr-unit-update-check.service").is_symlink()

    # run again: nothing changes, nothing is redone, the installed slot is kept
    (lib / "unit" / "marker").write_text("installed by the first run")
    before = snapshot(root)
    second = install(root, env, "--apt")
    assert second.returncode == 0, second.stderr
    assert "nothing to change: already installed" in second.stdout
    assert snapshot(root) == before
    log2 = calls.read_text()[len(log):]
    assert "useradd" not in log2 and "usermod" not in log2 and "pip" not in log2


def test_install_refuses_a_tree_that_is_not_the_source(tmp_path, target):
    root, env, _ = target
    proc = subprocess.run(["bash", str(FIRMWARE / "install.sh"), "--prefix", str(root), "--source", str(tmp_path)],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "not the software's source tree" in proc.stderr
    assert subprocess.run(["bash", str(FIRMWARE / "install.sh"), "--bogus"], env=env,
                          capture_output=True, text=True).returncode == 2


def directives(path: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "[")) and "=" in line:
            k, v = line.split("=", 1)
            out.setdefault(k, []).append(v)
    return out


def test_systemd_unit_is_notify_watchdog_and_hardened(tmp_path):
    d = directives(FIRMWARE / "systemd/alpr-unit.service")
    expect = {"Type": "notify", "Restart": "on-failure", "User": "alpr", "ProtectSystem": "strict",
              "PrivateTmp": "yes", "NoNewPrivileges": "yes", "StateDirectory": "alpr-unit",
              "ReadWritePaths": "/var/lib/alpr-unit", "Environment": "PYTHONPATH=/opt/alpr/current/lib"}
    for k, v in expect.items():
        assert v in d.get(k, []), k
    assert int(d["WatchdogSec"][0]) > 0 and d["CapabilityBoundingSet"] == [""]
    assert d["LoadCredential"] == ["identity.key:/etc/alpr-unit/identity/identity.key"]
    assert directives(FIRMWARE / "systemd/50-alpr-watchdog.conf")["RuntimeWatchdogSec"] == ["14s"]
    j = directives(FIRMWARE / "systemd/50-alpr-journald.conf")
    assert j["SystemMaxUse"] and j["SystemKeepFree"] and j["Storage"] == ["persistent"]

    # and systemd itself accepts the files (with the venv's python stood in by one that exists here)
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        pytest.skip("systemd-analyze not installed")
    for name in ("alpr-unit.service", "alpr-unit-update-check.service"):
        text = (FIRMWARE / "systemd" / name).read_text().replace("/opt/alpr/venv/bin/python", sys.executable)
        (tmp_path / name).write_text(text)
    proc = subprocess.run([analyze, "verify", str(tmp_path / "alpr-unit.service"),
                           str(tmp_path / "alpr-unit-update-check.service")], capture_output=True, text=True, timeout=60)
    problems = [ln for ln in (proc.stdout + proc.stderr).splitlines() if "alpr-unit" in ln]
    assert proc.returncode == 0 and not problems, proc.stdout + proc.stderr
