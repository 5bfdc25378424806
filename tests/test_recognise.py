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
from unit.recognise import MODEL_DIR, Recogniser, average_candidates, framing_sets, reframe
from unit.sources.frames import BadFrame

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


def test_grey_and_rgba_frames_are_read_as_rgb(rec):
    """The recogniser applies the capture loop's frame check: grey and four-channel frames are read as
    the RGB frame they convert to (unit.sources.frames.check_frame)."""
    img, _ = _photo(1)
    grey = img.mean(axis=2).astype(np.uint8)
    as_rgb = [r.text for r in rec.read(np.repeat(grey[..., None], 3, axis=2))]
    assert [r.text for r in rec.read(grey)] == as_rgb
    rgba = np.concatenate([img, np.zeros(img.shape[:2] + (1,), np.uint8)], axis=2)
    assert [r.text for r in rec.read(rgba)] == [r.text for r in rec.read(img)]


def test_missing_or_corrupt_model_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        Recogniser(model_dir=tmp_path)
    shutil.copy(MODEL_DIR / "detector.tflite", tmp_path / "detector.tflite")
    (tmp_path / "reader.tflite").write_bytes(b"this is not a flatbuffer")
    with pytest.raises(ModelError):
        Recogniser(model_dir=tmp_path)


def _models_with_card(tmp_path: Path, name: str, **card) -> Path:
    d = tmp_path / name
    d.mkdir()
    for f in ("detector.tflite", "reader.tflite", "reader.json"):
        shutil.copy(MODEL_DIR / f, d / f)
    base = json.loads((MODEL_DIR / "detector.json").read_text())
    (d / "detector.json").write_text(json.dumps({**base, **card}))
    return d


def test_detector_boxes_grow_by_the_cards_box_scale(tmp_path):
    """The card's per-axis box_scale grows each box about its centre; the shipped card grows them."""
    shipped = json.loads((MODEL_DIR / "detector.json").read_text())["box_scale"]
    assert all(1.0 < v < 1.2 for v in shipped)
    img, _ = _photo(0)
    raw = Recogniser(model_dir=_models_with_card(tmp_path, "raw", box_scale=[1, 1])).detect(img)
    grown = Recogniser(model_dir=_models_with_card(tmp_path, "grown", box_scale=[1.5, 1.25])).detect(img)
    assert raw and len(raw) == len(grown)
    for (b, s), (g, t) in zip(raw, grown):
        assert s == t
        assert (g[2] - g[0]) == pytest.approx(1.5 * (b[2] - b[0]))
        assert (g[3] - g[1]) == pytest.approx(1.25 * (b[3] - b[1]))
        assert g[0] + g[2] == pytest.approx(b[0] + b[2]) and g[1] + g[3] == pytest.approx(b[1] + b[3])
    # a card without the key (an older model) reads boxes as they come
    old = _models_with_card(tmp_path, "old")
    card = json.loads((old / "detector.json").read_text())
    del card["box_scale"]
    (old / "detector.json").write_text(json.dumps(card))
    assert Recogniser(model_dir=old).box_scale == (1.0, 1.0)


@pytest.mark.parametrize("bad", [[1.1], [1.1, "x"], [1.1, 3.0], 1.1, [True, 1.0]])
def test_a_malformed_box_scale_is_a_model_error_naming_it(tmp_path, bad):
    with pytest.raises(ModelError, match="box_scale"):
        Recogniser(model_dir=_models_with_card(tmp_path, "bad", box_scale=bad))


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
    assert r["framings"] == 1 and r["images"] == 3 and r["two_row_plates"] is True
    assert "two-row plates" in out
    assert cli.main(["eval", str(tmp_path), "--one-row", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["two_row_plates"] is False


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


def test_histogram_percentiles_are_numpys_bit_for_bit():
    """reader_input's contrast stretch reads its 2nd/98th percentiles off a histogram (faster); the
    models were trained with np.percentile, so the values, their type and the stretched crop must match."""
    from unit.preprocess import READER_H, READER_W, percentiles_u8, reader_input
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 256, (READER_H, READER_W), dtype=np.uint8) for _ in range(50)]
    arrays += [np.full((READER_H, READER_W), 7, np.uint8), np.array([[0, 255]], np.uint8),
               rng.integers(100, 103, (3, 5), dtype=np.uint8), np.array([[42]], np.uint8)]
    for u in arrays:
        for qs in ((2.0, 98.0), (0.0, 50.0, 100.0), (33.3, 66.7)):
            got = percentiles_u8(u, qs)
            want = np.percentile(u.astype(np.float32), qs)
            assert [type(v) for v in got] == [np.float64] * len(qs)
            assert list(got) == list(want), (u, qs)

    def reference(crop):
        g = np.asarray(Image.fromarray(crop).convert("L").resize((READER_W, READER_H), Image.BILINEAR),
                       dtype=np.float32)
        lo, hi = np.percentile(g, (2, 98))
        hi = max(hi, lo + 8)
        return np.clip((g - lo) * (255.0 / (hi - lo)), 0, 255).astype(np.uint8)

    items = load_crops(BENCH / "crops" / "us")[:40]
    for it in items:
        crop = np.asarray(Image.open(it.image).convert("RGB"))
        assert np.array_equal(reader_input(crop), reference(crop)), it.image.name


def _stacked(crop: np.ndarray) -> np.ndarray:
    """A real one-row plate made into a two-row one: cut at the emptiest column near the middle (a gap
    between characters), the left part above the right, as European square plates are laid out."""
    from unit import rows
    prof = rows.ink_profile(np.ascontiguousarray(crop.transpose(1, 0, 2)), rows=64)   # ink per column
    n = len(prof)
    lo, hi = int(n * 0.35), int(n * 0.65)
    cut = int(round((lo + int(prof[lo:hi].argmin()) + 0.5) * crop.shape[1] / n))
    left, right = crop[:, :cut], crop[:, cut:]
    w = max(left.shape[1], right.shape[1])
    pad = lambda a: np.pad(a, ((0, 0), (0, w - a.shape[1]), (0, 0)), mode="edge")
    return np.concatenate([pad(left), pad(right)], axis=0)


@pytest.fixture(scope="module")
def us_crops_read_right(rec):
    out = []
    for it in load_crops(BENCH / "crops" / "us")[:40]:
        crop = np.asarray(Image.open(it.image).convert("RGB"))
        if rec.read_crop(crop)[0] == it.plate:
            out.append((crop, it.plate))
    assert len(out) >= 25
    return out


def test_two_row_gap_is_found_in_two_row_plates_only(us_crops_read_right):
    from unit import rows
    stacked = [rows.split_row(_stacked(c)) for c, _ in us_crops_read_right]
    one_row = [rows.split_row(c) for c, _ in us_crops_read_right]
    n = len(us_crops_read_right)
    assert sum(r is not None for r in stacked) >= 0.7 * n
    assert sum(r is not None for r in one_row) <= 0.15 * n     # and then reads as before (test below)
    for (c, _), r in zip(us_crops_read_right, stacked):
        if r is not None:     # between the two rows: near the middle of the stacked plate
            assert 0.3 * (2 * c.shape[0]) <= r <= 0.7 * (2 * c.shape[0])


def test_two_row_plates_are_read_with_their_rows_side_by_side(rec, us_crops_read_right):
    one_row_only = Recogniser(threads=1, two_row=False)
    on = sum(rec.read_crop(_stacked(c))[0] == plate for c, plate in us_crops_read_right)
    off = sum(one_row_only.read_crop(_stacked(c))[0] == plate for c, plate in us_crops_read_right)
    n = len(us_crops_read_right)
    assert on >= 0.5 * n and off <= 0.1 * n, (on, off, n)
    # one-row plates read exactly as before: the side-by-side reading only adds candidates to plates
    # whose rows it found
    for c, plate in us_crops_read_right:
        assert one_row_only.read_crop(c)[0] == plate


def test_two_row_plate_in_a_frame_is_read_from_its_box(us_crops_read_right):
    """read(): the gap is found in the detector's box and carried into each framing of it. The box is
    given here (the detector, trained on one-row plates, often boxes each row of a stacked plate)."""
    r = Recogniser(threads=1)
    hits = 0
    for crop, plate in us_crops_read_right[:10]:
        s = _stacked(crop)
        frame = np.full((s.shape[0] + 200, s.shape[1] + 300, 3), 110, np.uint8)
        frame[120:120 + s.shape[0], 140:140 + s.shape[1]] = s
        box = (140.0, 120.0, 140.0 + s.shape[1], 120.0 + s.shape[0])
        r._detect = lambda image, box=box: [(box, 0.9)]
        reads = r.read(frame)
        hits += bool(reads) and reads[0].text == plate
        assert not reads or reads[0].box == tuple(int(v) for v in box)
    assert hits >= 5


def test_reframed_row_follows_padding_and_trimming():
    from unit.recognise import reframed_row
    assert reframed_row(100, 0.10, 50) == 60        # 10 rows of padding above
    assert reframed_row(100, -0.06, 50) == 44       # 6 rows trimmed off the top
    assert reframed_row(100, 0.0, 50) == 50
    assert reframed_row(100, 0.10, None) is None
    crop = np.arange(100 * 8, dtype=np.uint16).reshape(100, 8) // 8      # each pixel holds its row
    for py in (0.1, -0.06, 0.22, -0.2):
        assert reframe(crop, 0.0, py)[reframed_row(100, py, 37), 0] == 37


def test_side_by_side_lays_the_rows_left_to_right():
    from unit.rows import side_by_side
    crop = np.zeros((40, 30, 3), np.uint8)
    crop[:20] = 200                                  # top row light, bottom row dark
    out = side_by_side(crop, 20)
    assert out.shape == (20, 60, 3)
    assert out[:, :30].min() == 200 and out[:, 30:].max() == 0


def test_no_two_row_reading_of_a_box_outside_the_frame_or_a_sliver(monkeypatch):
    from unit import rows
    cuts = []
    real = rows.side_by_side
    monkeypatch.setattr(rows, "side_by_side", lambda crop, row: cuts.append(row) or real(crop, row))
    r = Recogniser(threads=1)
    frame = np.full((240, 320, 3), 120, np.uint8)
    frame[60:180:8] = 20                                     # stripes: empty rows everywhere
    r._detect = lambda image: [((40.0, -1000.0, 280.0, -1.0), 0.9)]     # wholly above the frame
    r.read(frame)
    assert cuts == []
    crop = np.full((100, 160, 3), 200, np.uint8)
    r._beam(crop, row=10)                                    # a 10-row sliver above the cut
    r._beam(crop, row=95)
    assert cuts == []
    r._beam(crop, row=50)
    assert cuts == [50]
