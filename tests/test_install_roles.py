"""Installs by role: which package may import what, what each extra pulls, and a central store that runs
with the unit's code and hardware libraries made unimportable."""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import time
from importlib import metadata

import pytest
import requests
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from central_fixtures import REPO
from hil.loopback import free_port

DIST = "alpr-gate"
OURS = {"wire", "unit", "central", "provisioning", "hil", "models"}
STDLIB = set(sys.stdlib_module_names)
# third-party top-level imports each role's code may use (beyond the standard library and `wire`)
WIRE_DEPS = {"cryptography"}
CENTRAL_DEPS = WIRE_DEPS | {"sqlalchemy", "alembic", "fastapi", "starlette", "pydantic", "uvicorn", "argon2",
                            "psycopg", "jinja2", "markupsafe"}
SERVER_ONLY = {"sqlalchemy", "alembic", "fastapi", "starlette", "pydantic", "uvicorn", "argon2", "psycopg", "jinja2",
               "markupsafe"}
UNIT_ONLY = {"unit", "provisioning", "hil", "models", "numpy", "PIL", "gpiozero", "ai_edge_litert", "tflite_runtime",
             "picamera2", "watchdog", "sqlite_utils", "requests", "gi", "gpiod"}


def imports_of(package: str) -> dict[str, set[str]]:
    """Top-level module names each file of `package` imports, anywhere in the file (lazy imports too)."""
    out = {}
    for path in sorted((REPO / package).rglob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(path.read_text("utf-8"), str(path))):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
        out[str(path.relative_to(REPO))] = names
    return out


def test_wire_imports_only_the_standard_library_and_cryptography():
    found = imports_of("wire")
    assert len(found) >= 8
    bad = {f: sorted(n - STDLIB - WIRE_DEPS - {"wire"}) for f, n in found.items() if n - STDLIB - WIRE_DEPS - {"wire"}}
    assert bad == {}


def test_central_imports_nothing_of_the_unit_and_only_its_own_extra():
    found = imports_of("central")
    assert len(found) >= 40
    bad = {f: sorted(n & UNIT_ONLY) for f, n in found.items() if n & UNIT_ONLY}
    assert bad == {}, "the central store must not import unit code or the unit's libraries"
    stray = {f: sorted(n - STDLIB - CENTRAL_DEPS - {"central", "wire"}) for f, n in found.items()
             if n - STDLIB - CENTRAL_DEPS - {"central", "wire"}}
    assert stray == {}, "a central import outside the central extra: declare it in setup.cfg or drop it"


def test_unit_side_imports_no_server_library():
    for package in ("unit", "provisioning"):
        found = imports_of(package)
        bad = {f: sorted(n & (SERVER_ONLY | {"central"})) for f, n in found.items() if n & (SERVER_ONLY | {"central"})}
        assert bad == {}, package


def closure(extras: set[str]) -> set[str]:
    """The distributions `pip install '.[extras]'` pulls, walked through the installed metadata."""
    seen: set[str] = set()
    todo = [(DIST, frozenset(extras))]
    while todo:
        name, wanted = todo.pop()
        try:
            reqs = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue                                   # not installed here (a platform marker's other side)
        for line in reqs:
            req = Requirement(line)
            if req.marker is not None and not any(req.marker.evaluate({"extra": e}) for e in (wanted or {""})):
                continue
            key = canonicalize_name(req.name)
            if key not in seen:
                seen.add(key)
                todo.append((req.name, frozenset(req.extras)))
    return seen


def test_each_role_pulls_only_its_own_dependencies():
    bare, unit, central = closure(set()), closure({"unit"}), closure({"central"})
    assert "cryptography" in bare and not bare & {"numpy", "fastapi", "gpiozero", "requests", "sqlalchemy"}
    assert {"numpy", "pillow", "gpiozero", "sqlite-utils", "watchdog", "requests", "ai-edge-litert"} <= unit
    assert not unit & {"fastapi", "starlette", "sqlalchemy", "alembic", "psycopg", "psycopg-binary", "uvicorn",
                       "argon2-cffi"}
    assert {"fastapi", "uvicorn", "sqlalchemy", "alembic", "psycopg", "argon2-cffi", "cryptography"} <= central
    assert not central & {"gpiozero", "ai-edge-litert", "picamera2", "watchdog", "sqlite-utils", "numpy", "pillow",
                          "requests", "pygobject", "gpiod"}
    # a Pi's camera and GPIO libraries come from apt: the unit role pulls no GStreamer bindings or libgpiod
    assert not unit & {"pygobject", "gpiod"}
    assert "pygobject" in closure({"gstreamer"}) and "gpiod" in closure({"jetson"})


BLOCKER = '''
import sys
BLOCKED = set({names!r})
class _Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"{{name}} is not installed on a central server", name=name)
        return None
sys.meta_path.insert(0, _Blocker())
'''


@pytest.fixture
def central_only(tmp_path):
    """Environment for a subprocess in which the unit's code and libraries cannot be imported."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKER.format(names=sorted(UNIT_ONLY)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)])}
    env.pop("ALPR_CENTRAL_HOME", None)
    env.pop("ALPR_CENTRAL_DB", None)
    probe = subprocess.run([sys.executable, "-c", "import gpiozero"], env=env, capture_output=True, text=True)
    assert probe.returncode == 1 and "not installed on a central server" in probe.stderr   # the blocker holds
    return env


def test_central_commands_run_without_unit_code(central_only, tmp_path):
    cmd = [sys.executable, "-m", "central.cli"]
    helped = subprocess.run(cmd + ["--help"], env=central_only, capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0 and "serve" in helped.stdout, helped.stderr
    home = tmp_path / "home"
    init = subprocess.run(cmd + ["init", "--home", str(home), "--json"], env=central_only, capture_output=True,
                          text=True, timeout=120)
    assert init.returncode == 0, init.stderr
    assert json.loads(init.stdout)["keys_made"] is True and (home / "keys" / "sealing.pem").exists()

    port = free_port()
    serve = subprocess.Popen(cmd + ["serve", "--home", str(home), "--port", str(port)], env=central_only,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                resp = requests.get(f"http://127.0.0.1:{port}/policy", timeout=5)
                break
            except requests.ConnectionError:
                assert serve.poll() is None, serve.stdout.read()
                assert time.monotonic() < deadline, "serve did not answer within 60 s"
                time.sleep(0.2)
        assert resp.status_code == 200 and "462" in resp.text
        assert requests.post(f"http://127.0.0.1:{port}/v1/reads", data=b"{}", timeout=5).status_code == 401
    finally:
        serve.terminate()
        serve.wait(timeout=30)
