"""Site adaptation end to end (`python -m models.training.adapt`, docs/firmware.md): clips made from the
*train* split of ../shared/data/benchmark/endtoend/us stand in for a site's labelled recordings; the reader
is fine-tuned on some of them with the shipped synthetic data, tested before and after on the held ones
through the unit's own pipeline, packed as a signed bundle and installed by `alpr-unit update apply`
into a temporary unit root, where the service started from the new slot loads the adapted reader. A
fine-tune gone wrong is refused by the same comparison, and no bundle is written.

Needs the train extra (TensorFlow, Keras): scripts/test.sh installs it. A small fine-tune (100 steps),
about two minutes of CPU in all.
"""
from __future__ import annotations

import hashlib
import json
import os
import shlex
import signal
import sys
import time
from pathlib import Path

import pytest

keras = pytest.importorskip("keras")

from hil.make_clips import make_clips, read_benchmark  # noqa: E402
from models.training import adapt, siteclips  # noqa: E402
from unit import cli as unit_cli  # noqa: E402
from unit import update  # noqa: E402
from unit.keys import make_release_key  # noqa: E402
from unit.layout import Layout  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
US = REPO.parent / "shared" / "data" / "benchmark" / "endtoend" / "us"
SMALL = ["--steps", "100", "--batch", "32", "--synth", "300", "--variants", "6", "--frames", "6", "--workers", "1"]

# stands in for the service: started from whatever opt/alpr/current/lib names, it loads the recogniser
# from there (the models the slot holds) and reports, as the real service's status file does
SERVICE = '''\
import json, os, sys, time
from unit.recognise import Recogniser
status = sys.argv[1]
versions = Recogniser().versions()
start = time.time()
while True:
    doc = {"updated": time.time(), "uptime_s": round(time.time() - start, 2), "pid": os.getpid(),
           "state": "ok", "problems": [], "model_versions": versions}
    with open(status + ".tmp", "w") as f:
        json.dump(doc, f)
    os.replace(status + ".tmp", status)
    time.sleep(0.1)
'''
SUPERVISOR = '''\
import os, signal, subprocess, sys, time
root, status, service = sys.argv[1], sys.argv[2], sys.argv[3]
pidfile = os.path.join(root, "service.pid")
try:
    os.killpg(int(open(pidfile).read()), signal.SIGKILL)
    time.sleep(0.2)
except (OSError, ValueError):
    pass
env = dict(os.environ, PYTHONPATH=os.path.join(root, "opt/alpr/current/lib"))
p = subprocess.Popen([sys.executable, service, status], env=env, cwd=root, start_new_session=True,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
open(pidfile, "w").write(str(p.pid))
'''


def train_names() -> list[str]:
    """The benchmark's train split (../shared/data/SOURCES.md): never a valid photo here."""
    return [p.stem for p, _, _ in read_benchmark(US) if int(hashlib.sha1(p.stem.encode()).hexdigest(), 16) % 8 != 0]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("site")
    names = train_names()
    assert len(names) == 90
    made = make_clips(US, tmp / "clips", names=names)
    assert len(made) == 90 and all(c.truth.labelled for c in made)
    priv, pub, _ = make_release_key(tmp / "release.pem")
    return tmp, priv, pub


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_split_is_fixed_by_the_clip_name(site):
    tmp, _, _ = site
    a = siteclips.split_clips([tmp / "clips"])
    b = siteclips.split_clips(sorted((tmp / "clips").iterdir(), reverse=True))
    assert sorted(c.name for c in a.held) == sorted(c.name for c in b.held)   # whatever the order given
    assert {c.name for c in a.held} == {n for n in train_names()
                                        if int(hashlib.sha256(n.encode()).hexdigest(), 16) % 4 == 0}
    assert not {c.name for c in a.held} & {c.name for c in a.train}
    assert 15 <= len(a.held) <= 35 and len(a.train) + len(a.held) == 90


def test_decide_is_the_comparison():
    base = {"vehicles": 20, "exact": 12, "false_reads": 0}
    assert not adapt.decide(base, {**base, "exact": 11}).ship
    assert adapt.decide(base, {**base, "exact": 12}).ship                 # no fewer: may ship
    assert not adapt.decide(base, {**base, "exact": 12}, min_gain=1).ship
    assert adapt.decide(base, {**base, "exact": 14}, min_gain=2).ship
    assert not adapt.decide(base, {**base, "exact": 15, "false_reads": 1}).ship


def test_adapted_reader_is_tested_packed_and_installed(site, tmp_path, capsys):
    tmp, priv, pub = site
    out = tmp_path / "out"
    t0 = time.time()
    rc = adapt.main([str(tmp / "clips"), "--key", str(priv), "--out", str(out), "--version", "7.0.0", "--json", *SMALL])
    cap = capsys.readouterr()
    assert cap.out.strip(), (rc, cap.err[-3000:])
    report = json.loads(cap.out)
    print(f"adapt: {time.time() - t0:.0f} s; before {report['before']}; after {report['after']}", file=sys.stderr)
    assert rc == 0, report
    before, after = report["before"], report["after"]
    # the figures are the held clips' own, through the unit's pipeline
    assert before["vehicles"] == after["vehicles"] == report["vehicles"]["held"] >= 15
    for d in (before, after):
        assert d["exact"] + d["misread"] + d["missed"] == d["vehicles"] and not d["errors"]
    assert report["verdict"] == "shipped" and after["exact"] >= before["exact"] and after["false_reads"] == 0
    assert report["harvest"]["crops"] > 100 and report["training"]["site_inputs"] > 500
    assert report["models"]["reader_after_sha256"] != report["models"]["reader_before_sha256"]
    assert report["models"]["reader_before_sha256"] == sha(REPO / "models" / "reader.tflite")
    card = json.loads((out / "candidate" / "reader.json").read_text())
    assert card["site_adaptation"]["after"]["exact"] == after["exact"]
    # no plate of the site in the report or the card (they travel; the clips stay)
    plates = {v.plate for c in siteclips.split_clips([tmp / "clips"]).held + siteclips.split_clips([tmp / "clips"]).train
              for v in c.truth.vehicles}
    text = (out / "report.json").read_text() + json.dumps(card)
    assert not [p for p in plates if len(p) >= 5 and p in text]

    # the bundle: verified against the pinned release key, installed into a unit root, and the service
    # started from the new slot runs the adapted reader with the shipped detector
    bundle = Path(report["bundle"]["path"])
    layout = Layout(tmp_path / "root")
    layout.etc.mkdir(parents=True)
    layout.state.mkdir(parents=True)
    (layout.etc / "release.pub").write_bytes(pub.read_bytes())
    status = layout.state / "status.json"
    (layout.etc / "config.toml").write_text(f'''
unit_id = "u1"
site = "s1"
[central]
public_key = "{siteclips.throwaway_sealing_key()}"
[buffer]
path = "{layout.state / 'buffer.sqlite'}"
[camera]
kind = "replay"
[[lanes]]
name = "in"
[health]
status_path = "{status}"
interval_s = 0.2
''')
    (tmp_path / "service.py").write_text(SERVICE)
    (tmp_path / "supervisor.py").write_text(SUPERVISOR)
    restart = shlex.join([sys.executable, str(tmp_path / "supervisor.py"), str(layout.root), str(status),
                          str(tmp_path / "service.py")])
    assert unit_cli.main(["update", "verify", str(bundle), "--root", str(layout.root)]) == 0
    capsys.readouterr()
    try:
        rc = unit_cli.main(["update", "apply", str(bundle), "--root", str(layout.root), "--restart-cmd", restart,
                            "--health-timeout", "60", "--json"])
        res = json.loads(capsys.readouterr().out)
        assert rc == 0 and res["result"] == "installed", res
        lib = layout.current / "lib"
        assert sha(lib / "models" / "reader.tflite") == report["models"]["reader_after_sha256"]
        assert sha(lib / "models" / "detector.tflite") == sha(REPO / "models" / "detector.tflite")
        assert update.verify_slot(layout, update.current_slot(layout)) == []
        running = json.loads(status.read_text())
        assert running["model_versions"]["reader"] == "reader-" + report["models"]["reader_after_sha256"][:12]
    finally:
        try:
            os.killpg(int((layout.root / "service.pid").read_text()), signal.SIGKILL)
        except (OSError, ValueError):
            pass


def test_a_fine_tune_gone_wrong_is_refused(site, tmp_path, capsys):
    """A learning rate a hundred times too high wrecks the reader; the held comparison - the same one
    that let the good reader through - refuses it, and nothing that could be installed is written."""
    tmp, priv, _ = site
    split = siteclips.split_clips([tmp / "clips"])
    clips = [str(c.path) for c in split.train[:12] + split.held[:12]]
    out = tmp_path / "out"
    rc = adapt.main([*clips, "--key", str(priv), "--out", str(out), "--version", "7.0.1", "--json", "--min-held", "10",
                     "--steps", "20", *SMALL[2:], "--lr", "0.05"])
    cap = capsys.readouterr()
    assert cap.out.strip(), (rc, cap.err[-3000:])
    report = json.loads(cap.out)
    assert rc == 1, report
    assert report["verdict"] == "refused" and report["after"]["exact"] < report["before"]["exact"]
    assert "refused" in report["reason"] and "bundle" not in report
    assert not list(out.glob("*.bundle"))
    assert (out / "candidate" / "reader.tflite").exists()     # kept for a look, not for a unit


def test_too_few_held_vehicles_is_bad_usage(site, tmp_path, capsys):
    tmp, priv, _ = site
    split = siteclips.split_clips([tmp / "clips"])
    clips = [str(c.path) for c in split.train[:3] + split.held[:2]]
    assert adapt.main([*clips, "--key", str(priv), "--out", str(tmp_path / "o")]) == 2
    assert "2 held vehicles in 2 clips, at least 10 needed" in capsys.readouterr().err
    assert adapt.main([str(tmp_path / "nothing-here"), "--key", str(priv), "--out", str(tmp_path / "o")]) == 2
    assert "no clip folders" in capsys.readouterr().err
