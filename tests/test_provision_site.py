"""`alpr-provision site` (flags and questions, validated like the service) and `alpr-provision aim`."""
from __future__ import annotations

import io
import json
import shutil
import sys
import urllib.request

import pytest
from PIL import Image

from provisioning import cli, testplate
from provisioning.aim import Aimer, AimServer
from unit.layout import Layout
from unit.config import load

from test_provision_selftest import enrolled_root  # noqa: E402  (tests/ is on sys.path)


@pytest.fixture
def root(tmp_path):
    return enrolled_root(tmp_path, "http://127.0.0.1:9")


def run(capsys, *argv):
    capsys.readouterr()
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.mark.parametrize("lanes, message", [
    (["name=in,sensor=loop,pin=17,colour=red"], "unknown key 'colour'"),
    (["name=in,direction=sideways"], "direction 'sideways': one of in, out, unknown"),
    (["name=in,sensor=loop"], "needs pin="),
    (["name=in,sensor=loop,pin=40"], "pin 40 is not a usable BCM GPIO number"),
    (["name=in,sensor=loop,pin=17", "name=out,sensor=ir_beam,pin=17"],
     "config error: lanes[1].sensor.pin: expected a pin no other lane uses, got 17"),
    (["name=in,roi=0.5:0:0.2:1"], "config error: lanes[0].roi: expected [x0, y0, x1, y1]"),
    (["name=in", "name=in"], "lane names must differ"),
])
def test_bad_site_input_is_refused_naming_what(root, capsys, lanes, message):
    argv = ["site", "--root", str(root)]
    for lane in lanes:
        argv += ["--lane", lane]
    code, text = run(capsys, *argv)
    assert code == 2 and message in text and "Traceback" not in text
    assert not Layout(root).config.exists()


def test_site_from_flags_questions_and_guards(root, capsys, tmp_path, monkeypatch):
    lay = Layout(root)
    code, text = run(capsys, "site", "--root", str(root), "--site", "elsewhere", "--lane", "name=in")
    assert code == 2 and "enrolled this unit at site 'port-south'" in text
    code, text = run(capsys, "site", "--root", str(tmp_path / "not-enrolled"), "--lane", "name=in")
    assert code == 2 and "alpr-provision init" in text

    code, text = run(capsys, "site", "--root", str(root), "--lane", "name=in,sensor=ir,pin=GPIO5,roi=0:0.2:1:1",
                     "--lens-position", "0.4", "--dry-run")
    assert code == 0 and 'kind = "ir_beam"' in text and 'pin = "GPIO5"' in text and not lay.config.exists()

    # asked, with an end of input in the right places; a wrong answer is asked again
    answers = "\n".join(["G7", "2", "", "in", "loop", "99", "17", "", "", "0:0:0.5:1",
                         "G7-exit", "out", "none", "0.5:0:1:1", "picamera2", "1280x720", "0.5"]) + "\n"
    monkeypatch.setattr(sys, "stdin", io.StringIO(answers))
    code, text = run(capsys, "site", "--root", str(root), "-i")
    assert code == 0, text
    assert "not a usable BCM GPIO number" in text                 # the 99, asked again
    cfg = load(lay.config)
    assert [ln.name for ln in cfg.lanes] == ["G7-1", "G7-exit"]
    assert (cfg.lanes[0].sensor.kind, cfg.lanes[0].sensor.pin, cfg.lanes[0].sensor.active_high) == ("loop", 17, False)
    assert cfg.lanes[1].sensor.kind == "none" and cfg.lanes[1].roi == (0.5, 0.0, 1.0, 1.0)
    assert cfg.camera.resolution == (1280, 720) and cfg.camera.options.lens_position == 0.5
    assert json.loads(lay.site_json.read_text())["gate"] == "G7"

    # rewriting keeps the previous file
    code, text = run(capsys, "site", "--root", str(root), "--lane", "name=in", "--json")
    assert code == 0 and json.loads(text)["backup"]
    assert len(list(lay.etc.glob("config.toml.bak-*"))) == 1


def test_aim_measures_plates_against_the_reader_minimum(root, capsys, tmp_path):
    stills = tmp_path / "stills"
    stills.mkdir()
    shutil.copy(testplate.PATH, stills / "plate.jpg")
    assert cli.main(["site", "--root", str(root), "--lane", "name=in,roi=0:0:1:1", "--camera", "replay",
                     "--camera-source", str(stills)]) == 0
    code, text = run(capsys, "aim", "--root", str(root), "--once", "--json")
    assert code == 0, text
    res = json.loads(text[text.index("{"):])
    plate = res["plates"][0]
    assert plate["min_width_px"] == 128 and plate["width_px"] > 300 and plate["wide_enough"] and plate["lane"] == "in"
    assert "plate" not in plate                                     # no plate text unless asked
    assert Image.open(res["jpeg"]).size == (960, 540)

    code, text = run(capsys, "aim", "--root", str(root), "--once", "--min-width", "1000")
    assert code == 1 and "TOO SMALL: zoom in" in text

    # the refreshing page, served on loopback
    aimer = Aimer(load(Layout(root).config), show_plates=True)
    server = AimServer(aimer, tmp_path / "aim", bind="127.0.0.1", port=0, interval=0.2)
    server.capture_once()
    server.start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        page = urllib.request.urlopen(base + "/", timeout=5).read().decode()
        assert 'http-equiv="refresh"' in page and "128 px" in page and testplate.TEXT in page
        jpeg = urllib.request.urlopen(base + "/aim.jpg", timeout=5).read()
        assert Image.open(io.BytesIO(jpeg)).format == "JPEG"
        figures = json.loads(urllib.request.urlopen(base + "/aim.json", timeout=5).read())
        assert figures["plates"][0]["wide_enough"]
    finally:
        server.stop()


def test_a_relative_root_writes_paths_that_resolve_from_anywhere(tmp_path, capsys, monkeypatch):
    """`--root` given relative to where the technician stands: the config it writes must still name the
    unit's own buffer and hot list, from wherever the service later starts."""
    root = enrolled_root(tmp_path / "image", "http://127.0.0.1:9")
    monkeypatch.chdir(tmp_path)
    code, text = run(capsys, "site", "--root", "image/unit", "--lane", "name=in,sensor=loop,pin=17")
    assert code == 0, text
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    cfg = load(root / "etc" / "alpr-unit" / "config.toml")
    assert cfg.buffer.path == str(root.resolve() / "var" / "lib" / "alpr-unit" / "buffer.sqlite")
    assert cfg.hotlist.path == str(root.resolve() / "var" / "lib" / "alpr-unit" / "hotlist.txt")
    assert cfg.uplink.identity_key_path == str(root.resolve() / "etc" / "alpr-unit" / "identity" / "identity.key")


def test_overlapping_lane_regions_are_written_with_a_warning(root, capsys):
    """Allowed (a camera may need it) but said: one vehicle in the overlap can be read on both lanes."""
    code, text = run(capsys, "site", "--root", str(root), "--lane", "name=in,roi=0:0:0.6:1",
                     "--lane", "name=out,roi=0.4:0:1:1")
    assert code == 0 and "config written" in text
    assert "warning: lanes[0] 'in' and lanes[1] 'out': their regions (roi) overlap (33% of the smaller)" in text
    assert load(Layout(root).config).warnings                      # the service says it at start too
    code, text = run(capsys, "site", "--root", str(root), "--lane", "name=in,roi=0:0:0.5:1",
                     "--lane", "name=out,roi=0.5:0:1:1", "--json")
    assert code == 0 and json.loads(text)["warnings"] == []        # regions that only touch
