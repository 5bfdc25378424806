"""The recognition-threshold sweep (`python -m hil sweep`), the benchmark's train/valid split in
`make-clips`, and low-confidence reads from the unit to the store's read view: real LiteRT inference on
a demo clip through the real unit service into a real central store on loopback."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from hil import sweep
from hil.central import LocalCentral
from hil.make_clips import make_clips, read_benchmark, split_of
from unit import clips
from unit.config import RecognitionConfig

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "hil" / "clips"
US = ROOT.parent / "shared" / "data" / "benchmark" / "endtoend" / "us"     # read at run time, never copied in


@pytest.fixture(scope="module")
def central(tmp_path_factory):
    home = tmp_path_factory.mktemp("sweep-central")
    with LocalCentral(home / "central", log=home / "central.log") as c:
        yield c


def test_split_is_the_one_sources_md_fixes():
    for stem in ("us4", "wts-lg-000032", "JRK5336", "test_001", "AYO9034", "wts-lg-000033"):
        want = "valid" if int(hashlib.sha1(stem.encode()).hexdigest(), 16) % 8 == 0 else "train"
        assert split_of(stem) == want
    assert split_of("us4") == "valid" and split_of("AYO9034") == "train"


@pytest.mark.skipif(not US.is_dir(), reason="../shared/data/benchmark is not beside the checkout")
def test_make_clips_split_valid_takes_the_valid_photos_only(tmp_path):
    everything = read_benchmark(US)
    valid = [p.stem for p, _, _ in everything if split_of(p.stem) == "valid"]
    assert len(valid) == 17 and len(everything) - len(valid) == 90       # ../shared/data/SOURCES.md
    made = make_clips(US, tmp_path / "v", split="valid")
    assert sorted(c.path.name for c in made) == sorted(valid)
    with pytest.raises(ValueError, match="split"):
        make_clips(US, tmp_path / "x", split="test")


def test_sweep_replay_is_what_the_real_unit_does_and_low_confidence_reads_reach_the_store(central):
    """Frame reads recorded once with every threshold at 0, replayed at a setting, give the same
    vehicles as the real harness run at that setting. The setting asks for a confidence (0.99) that most
    reads do not reach: without low-confidence reads those vehicles get no read; with them, each gets its
    read, marked low-confidence in the read's trigger at the store, with its confidence as voted."""
    path = DEMO / "01-day-one-lane"
    clip = clips.load(path)
    records, models, _ = sweep.record([path], framings=2, central=central)
    assert models and len(records) == 1 and len(records[0].bursts) == 3
    sets = {"demo": [(records[0], clip)]}
    off = sweep.Setting(2, 0.3, 0.0, 0.99, False)
    on = sweep.Setting(2, 0.3, 0.0, 0.99, True)
    replayed_off = sweep.replay(sets, off, RecognitionConfig(), (10.0, 1))["demo"]
    replayed_on = sweep.replay(sets, on, RecognitionConfig(), (10.0, 1))["demo"]
    below = replayed_off.unread
    assert below >= 2 and replayed_off.exact + below == 3 and replayed_off.unread_plate_found == below
    assert (replayed_on.exact, replayed_on.unread, replayed_on.low_reads, replayed_on.low_exact) == (3, 0, below, below)

    seen = []
    report = sweep.run_harness([path], on.toml(), central=central,
                               on_burst=lambda run, trig, reads, frames: seen.append(len(reads)))
    t = report.total()
    assert t["errors"] == 0 and len(seen) == 3
    assert (t["exact"], t["misread"], t["missed"], t["false_reads"], t["duplicates"]) == \
        (replayed_on.exact, replayed_on.misread, replayed_on.unread, replayed_on.false_reads, replayed_on.duplicates)
    assert t["exact_low"] == below                      # the store's reads say low_confidence, the others not
    stored = report.clips[0].items
    assert len(stored) == 3 and all(i.low_confidence == (i.confidence < 0.99) for i in stored)
    assert report.clips[0].counters.get("low_confidence_reads") == below


def test_the_read_view_marks_a_low_confidence_read():
    from central.console import web
    page = web.templates.get_template("read.html")
    doc = {"read_id": "r1", "plate": "4PGM335", "confidence": 0.08, "box": [1, 2, 3, 4], "model": {},
           "candidates": [{"plate": "4PGM335", "score": 0.08}, {"plate": "6PGM335", "score": 0.05}],
           "captured_at": "2026-12-01T00:00:00Z", "received_at": "2026-12-01T00:00:01Z"}
    marked = page.render(read={**doc, "trigger": {"sensor": "loop", "low_confidence": True}}, when=str)
    plain = page.render(read={**doc, "trigger": {"sensor": "loop"}}, when=str)
    assert "low confidence" in marked and "6PGM335" in marked
    assert "low confidence" not in plain
