"""The recogniser on real photos with the shipped int8 models (real LiteRT inference)."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from unit import cli
from unit.detect import iou
from unit.evaluate import load_crops, load_endtoend
from unit.litert import ModelError
from unit.recognise import MODEL_DIR, BadFrame, Recogniser, average_candidates, framing_sets, reframe

BENCH = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "benchmark"


@pytest.fixture(scope="module")
def rec():
    return Recogniser(threads=1)


def _photo(k: int = 0):
    item = load_endtoend(BENCH / "endtoend" / "us")[k]
    return np.asarray(Image.open(item.image).convert("RGB")), item


def test_models_are_small_int8_files():
    for name in ("detector.tflite", "reader.tflite"):
        assert (MODEL_DIR / name).stat().st_size < 4_000_000
    from ai_edge_litert.interpreter import Interpreter
    for name in ("detector.tflite", "reader.tflite"):
        it = Interpreter(model_path=str(MODEL_DIR / name))
        assert it.get_input_details()[0]["dtype"] == np.int8


def test_reads_have_the_contract_shape(rec):
    img, _ = _photo(0)
    reads = rec.read(img)
    for r in reads:
        x0, y0, x1, y1 = r.box
        assert 0 <= x0 < x1 <= img.shape[1] and 0 <= y0 < y1 <= img.shape[0]
        assert r.text.isalnum() and r.text == r.text.upper()
        assert 0.0 <= r.confidence <= 1.0
        assert r.candidates[0].plate == r.text
        assert [c.score for c in r.candidates] == sorted((c.score for c in r.candidates), reverse=True)
        assert r.crop is not None and r.crop.dtype == np.uint8
        assert r.crop.shape[0] >= y1 - y0 and r.crop.shape[1] >= x1 - x0     # the whole box, for evidence
    assert set(rec.versions()) == {"detector", "reader"}


def test_finds_plates_in_real_photos(rec):
    """Over 20 real photos the truth box is found in most; a floor well under the measured rate."""
    items = load_endtoend(BENCH / "endtoend" / "us")[:20]
    found = 0
    for it in items:
        img = np.asarray(Image.open(it.image).convert("RGB"))
        boxes = np.array([b for b, _ in rec.detect(img)], float).reshape(-1, 4)
        found += bool(len(boxes)) and float(iou(np.array(it.box), boxes).max()) >= 0.3
    assert found >= 10


def test_reads_real_crops(rec):
    """Exact reads on 40 real crops: a floor well under the measured rate, so a broken model fails."""
    items = load_crops(BENCH / "crops" / "us")[:40]
    exact = sum(rec.read_crop(np.asarray(Image.open(i.image).convert("RGB")))[0] == i.plate for i in items)
    assert exact >= 12


@pytest.mark.parametrize("frame", [np.zeros((0, 0, 3), np.uint8), np.zeros((100, 100, 5), np.uint8),
                                   np.zeros((100, 100, 3), np.float32), "not an array"])
def test_bad_frames_are_refused_clearly(rec, frame):
    with pytest.raises(BadFrame):
        rec.read(frame)


def test_grey_frame_is_accepted(rec):
    img, _ = _photo(1)
    assert isinstance(rec.read(img.mean(axis=2).astype(np.uint8)), list)


def test_missing_or_corrupt_model_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        Recogniser(model_dir=tmp_path)
    shutil.copy(MODEL_DIR / "detector.tflite", tmp_path / "detector.tflite")
    (tmp_path / "reader.tflite").write_bytes(b"this is not a flatbuffer")
    with pytest.raises(ModelError):
        Recogniser(model_dir=tmp_path)


def test_eval_goes_on_past_a_corrupt_image(tmp_path, capsys):
    src = load_endtoend(BENCH / "endtoend" / "us")[:2]
    for it in src:
        shutil.copy(it.image, tmp_path / it.image.name)
        shutil.copy(it.image.with_suffix(".txt"), tmp_path / (it.image.stem + ".txt"))
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (tmp_path / "broken.txt").write_text("broken.jpg\t1\t1\t10\t5\tABC123\n")
    assert cli.main(["eval", str(tmp_path), "--json"]) == 0
    out, err = capsys.readouterr()
    import json
    r = json.loads(out)
    assert r["images"] == 2 and "broken.jpg" in err
    for key in ("images", "exact", "topn", "detected", "cer", "ms_median", "ms_p90"):
        assert key in r


def test_eval_crops_format_table(tmp_path, capsys):
    rows = ["file,state,plate"]
    for it in load_crops(BENCH / "crops" / "us")[:3]:
        shutil.copy(it.image, tmp_path / it.image.name)
        rows.append(f"{it.image.name},xx,{it.plate}")
    (tmp_path / "groundtruth.csv").write_text("\n".join(rows) + "\n")
    assert cli.main(["eval", str(tmp_path), "--threads", "2"]) == 0
    out = capsys.readouterr().out
    assert "images" in out and "exact read (top-1)" in out and "threads" in out
    assert cli.main(["eval", str(tmp_path), "--framings", "1", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["framings"] == 1 and r["images"] == 3


def test_candidates_are_averaged_over_framings():
    """A text one framing misses counts as 0 there: the plate both framings agree on wins."""
    a = [("7ABC123", 0.6), ("7ABC128", 0.3)]
    b = [("7ABC128", 0.7), ("7ABG128", 0.2)]
    out = average_candidates([a, b])
    assert [t for t, _ in out] == ["7ABC128", "7ABC123", "7ABG128"]
    assert out[0][1] == pytest.approx(0.5) and out[1][1] == pytest.approx(0.3)
    assert average_candidates([a]) == a


def test_reframe_pads_with_edge_pixels_and_trims():
    crop = np.arange(40 * 100 * 3, dtype=np.int64).reshape(40, 100, 3).astype(np.uint8)
    padded = reframe(crop, 0.05, 0.10)
    assert padded.shape == (48, 110, 3)
    assert np.array_equal(padded[4:44, 5:105], crop) and np.array_equal(padded[0, 5:105], crop[0])
    assert np.array_equal(reframe(crop, -0.03, -0.06), crop[2:38, 3:97])
    assert reframe(crop, 0, 0) is crop
    tiny = crop[:2, :4]
    assert reframe(tiny, -0.4, -0.4).shape == tiny.shape      # never trimmed to nothing


def test_framings_change_what_is_read_not_the_contract(rec):
    """One framing or several: the same photo gives well-formed reads; no framings is refused."""
    img, _ = _photo(2)
    single = Recogniser(framings=((0.05, 0.10),), crop_framings=((0.0, 0.0),))
    for r in single.read(img) + rec.read(img):
        assert r.candidates[0].plate == r.text and 0.0 <= r.confidence <= 1.0
    with pytest.raises(ValueError, match="framings"):
        Recogniser(framings=())


def test_unit_config_picks_the_reader_passes():
    """recognition.framings reaches the recogniser the unit builds: 1 pass, or the shipped pair."""
    from unit.config import RecognitionConfig
    from unit.health import Health
    from unit.pipeline import ModelHolder
    for n in (1, 2):
        rec = ModelHolder(RecognitionConfig(framings=n), Health("t")).get()
        assert rec is not None and len(rec.framings) == len(rec.crop_framings) == n
    assert framing_sets(1)[0] != framing_sets(2)[0]
    with pytest.raises(ValueError, match="1 or 2"):
        framing_sets(3)
