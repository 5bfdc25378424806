"""Training-side data code that runs without TensorFlow: synthetic plates are reproducible and
labelled in the reader's alphabet, and the pseudo-labelled validation folders come out in the formats
`alpr-unit eval` reads (so models are chosen on real photos that are neither trained on nor the
benchmark)."""
import csv

import numpy as np
import pytest
from PIL import Image

from models.training import pseudolabel, synth
from models.training.datasets import scenes
from unit.ctc import ALPHABET
from unit.evaluate import evaluate, load_crops, load_endtoend


def test_synthetic_reader_samples_are_seeded_and_labelled():
    sc = scenes("train")[:20]
    a = synth.reader_sample(np.random.default_rng(7), sc)
    b = synth.reader_sample(np.random.default_rng(7), sc)
    assert a[1] == b[1] and np.array_equal(np.asarray(a[0]), np.asarray(b[0]))
    rng = np.random.default_rng(3)
    for _ in range(12):
        crop, text = synth.reader_sample(rng, sc)
        assert 4 <= len(text) <= 8 and set(text) <= set(ALPHABET)
        assert crop.width > crop.height > 4


def test_synth_renders_without_debian_fonts(monkeypatch):
    """A training machine without the optional fonts still renders (with the shipped plate font)."""
    monkeypatch.setattr(synth, "FONT_FILES", ["/nonexistent/font.ttf"])
    monkeypatch.setattr(synth, "DECOR_FONTS", [])
    synth._warn_no_fonts.cache_clear()
    rng = np.random.default_rng(5)
    with pytest.warns(UserWarning, match="none of the Debian fonts"):
        for _ in range(8):
            plate = synth.render_plate(rng)
            assert plate.image.mode == "RGBA" and set(plate.text) <= set(ALPHABET)


def _labels(tmp_path, rows):
    pseudo = tmp_path / "pseudo"
    (pseudo / "crops").mkdir(parents=True)
    with open(pseudo / "labels.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "text", "confidence", "split"])
        for name, text, split in rows:
            Image.new("RGB", (120, 40), (200, 200, 200)).save(pseudo / "crops" / name)
            w.writerow([name, text, "0.950", split])
    return pseudo


def test_valid_crops_folder_is_the_crops_format(tmp_path):
    pseudo = _labels(tmp_path, [("valid-a-0.png", "7ABC234", "valid"), ("train-b-0.png", "XYZ123", "train")])
    assert pseudolabel.main(["--out", str(pseudo), "--valid-folder", str(tmp_path / "pv")]) == 0
    items = load_crops(tmp_path / "pv")
    assert [(i.image.name, i.plate) for i in items] == [("valid-a-0.png", "7ABC234")]
    r = evaluate(tmp_path / "pv")     # the real recogniser runs on it
    assert r["images"] == 1 and r["format"] == "crops"


def test_valid_scenes_folder_keeps_one_plate_scenes_only(tmp_path):
    valid = scenes("valid")
    one = next(s for s in valid if len(s.boxes) == 1)
    many = next(s for s in valid if len(s.boxes) > 1)
    pseudo = _labels(tmp_path, [(pseudolabel.crop_name("valid", one.image, 0), "AB12CDE", "valid"),
                                (pseudolabel.crop_name("valid", many.image, 0), "XY34ZZZ", "valid")])
    out = tmp_path / "vs"
    assert pseudolabel.main(["--out", str(pseudo), "--valid-scenes", str(out)]) == 0
    items = load_endtoend(out)
    assert len(items) == 1 and items[0].plate == "AB12CDE"
    x0, y0, x1, y1 = one.boxes[0]
    assert items[0].box == pytest.approx((x0, y0, x1, y1), abs=1.0)
    with Image.open(items[0].image) as im:
        assert im.size == (one.width, one.height)
