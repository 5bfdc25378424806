"""Training-side data code that runs without TensorFlow: synthetic plates are reproducible and
labelled in the reader's alphabet, and the pseudo-labelled validation folders come out in the formats
`alpr-unit eval` reads (so models are chosen on real photos that are neither trained on nor the
benchmark)."""
import argparse
import csv
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from models.training import pseudolabel, synth
from models.training.datasets import crop_name, scenes
from unit.ctc import ALPHABET
from unit.evaluate import evaluate, load_crops, load_endtoend


def _assert_seeded(sampler, sc, seed: int) -> None:
    """The same seed gives the same crop and the same text."""
    a = sampler(np.random.default_rng(seed), sc)
    b = sampler(np.random.default_rng(seed), sc)
    assert a[1] == b[1] and np.array_equal(np.asarray(a[0]), np.asarray(b[0]))


def test_synthetic_reader_samples_are_seeded_and_labelled():
    sc = scenes("train")[:20]
    _assert_seeded(synth.reader_sample, sc, 7)
    rng = np.random.default_rng(3)
    for _ in range(12):
        crop, text = synth.reader_sample(rng, sc)
        assert 4 <= len(text) <= 8 and set(text) <= set(ALPHABET)
        assert crop.width > crop.height > 4


def test_a_plate_frame_covers_the_edges_and_never_the_registration():
    """The same seed renders the same plate with and without a frame (the frame is drawn last, after
    its one extra draw), the frame hides the edges, and the registration's box is left as it was."""
    fonts, decor = synth._fonts()
    for seed in range(6):
        plain = synth.render_us(np.random.default_rng(seed), fonts, decor)
        framed = synth.render_us(np.random.default_rng(seed), fonts, decor, frames=1.0)
        assert plain.text == framed.text
        a, b = np.asarray(plain.image, int), np.asarray(framed.image, int)
        H, W = a.shape[:2]
        # the registration is drawn between 32 % and 76 % of the height, inside 14 % of the width
        assert np.array_equal(a[int(0.33 * H):int(0.75 * H), int(0.15 * W):int(0.85 * W)],
                              b[int(0.33 * H):int(0.75 * H), int(0.15 * W):int(0.85 * W)])
        edge = np.abs(a - b)[int(0.93 * H):, :, :3].sum(axis=2) > 0
        assert edge.mean() > 0.5, f"seed {seed}: the bottom band of the frame is missing"
    img = Image.new("RGB", (600, 310), (250, 250, 250))
    out = np.asarray(synth.plate_frame(np.random.default_rng(1), img, (60, 90, 540, 240), fonts), int)
    assert (out[90:240, 60:540] == 250).all()
    assert (out[:, :4] != 250).any(axis=2).all(), "the side bands cover the left edge"


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


def test_a_synthetic_plate_covers_a_real_plate_and_nothing_else():
    """The detector's augmentation: a rendered plate over a real plate's box, seeded, inside the box."""
    sc = next(s for s in scenes("train") if s.boxes and s.boxes[0][2] - s.boxes[0][0] >= 60)
    im = Image.open(sc.image).convert("RGB")
    box = sc.boxes[0]
    out, new = synth.paste_over(np.random.default_rng(4), im, box)
    again, _ = synth.paste_over(np.random.default_rng(4), im, box)
    assert np.array_equal(np.asarray(out), np.asarray(again))
    assert box[0] <= new[0] < new[2] <= box[2] and box[1] <= new[1] < new[3] <= box[3]
    assert new[2] - new[0] >= 0.85 * (box[2] - box[0])
    changed = np.abs(np.asarray(out, int) - np.asarray(im, int)).sum(axis=2) > 0
    ys, xs = np.nonzero(changed)
    assert xs.min() >= int(box[0]) and xs.max() <= int(np.ceil(box[2]))
    assert ys.min() >= int(box[1]) and ys.max() <= int(np.ceil(box[3]))
    x0, y0, x1, y1 = (int(round(v)) for v in new)
    assert changed[y0:y1, x0:x1].mean() > 0.6


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


def test_valid_folder_can_leave_out_plates_seen_in_training(tmp_path):
    """Dash-cam videos put frames of one car in both splits; --unseen keeps only plates whose text no
    training crop has, so a reader is not measured on the plates it learned."""
    pseudo = _labels(tmp_path, [("valid-a-0.png", "7ABC234", "valid"), ("valid-c-0.png", "B21GSB", "valid"),
                                ("train-b-0.png", "B21GSB", "train")])
    assert pseudolabel.main(["--out", str(pseudo), "--valid-folder", str(tmp_path / "all")]) == 0
    assert pseudolabel.main(["--out", str(pseudo), "--valid-folder", str(tmp_path / "new"), "--unseen"]) == 0
    assert sorted(i.plate for i in load_crops(tmp_path / "all")) == ["7ABC234", "B21GSB"]
    assert [i.plate for i in load_crops(tmp_path / "new")] == ["7ABC234"]


def test_valid_scenes_folder_keeps_one_plate_scenes_only(tmp_path):
    valid = scenes("valid")
    one = next(s for s in valid if len(s.boxes) == 1)
    many = next(s for s in valid if len(s.boxes) > 1)
    pseudo = _labels(tmp_path, [(crop_name("valid", one.image, 0), "AB12CDE", "valid"),
                                (crop_name("valid", many.image, 0), "XY34ZZZ", "valid")])
    out = tmp_path / "vs"
    assert pseudolabel.main(["--out", str(pseudo), "--valid-scenes", str(out)]) == 0
    items = load_endtoend(out)
    assert len(items) == 1 and items[0].plate == "AB12CDE"
    x0, y0, x1, y1 = one.boxes[0]
    assert items[0].box == pytest.approx((x0, y0, x1, y1), abs=1.0)
    with Image.open(items[0].image) as im:
        assert im.size == (one.width, one.height)


def _fake_chunk(args):
    seed, n, split, *_ = args
    rng = np.random.default_rng(seed)
    return rng.integers(0, 255, (n, 40, 128), dtype=np.uint8), [f"{split}{seed}X{i}" for i in range(n)]


def test_a_larger_synthetic_set_reuses_a_smaller_cached_one(tmp_path, monkeypatch):
    """Each chunk of 1,000 plates has its own seed, so a cached set of the same seed holds another
    size's first chunks: growing a training set renders only the new plates, shrinking it renders
    none, and either gives exactly the set a fresh build would."""
    from models.training import train_reader as tr
    monkeypatch.setattr(tr, "_synth_chunk", _fake_chunk)    # forked workers inherit it
    monkeypatch.setattr(tr, "CACHE", tmp_path / "a")
    fresh = tr.synth_set(9, 2500, "train", workers=1)
    monkeypatch.setattr(tr, "CACHE", tmp_path / "b")
    small = tr.synth_set(9, 2000, "train", workers=1)
    grown = tr.synth_set(9, 2500, "train", workers=1)
    assert np.array_equal(grown[0], fresh[0]) and list(grown[1]) == list(fresh[1])
    assert np.array_equal(grown[0][:2000], small[0]) and len(set(grown[1])) == 2500
    # the first 2,000 came from the cache, not from rendering again: mark the cached ones and grow again
    np.savez(tmp_path / "b" / "reader-synth-train-s9-n2000.npz", x=np.zeros_like(small[0]), y=np.array(small[1]))
    (tmp_path / "b" / "reader-synth-train-s9-n2500.npz").unlink()
    regrown = tr.synth_set(9, 2500, "train", workers=1)
    assert not regrown[0][:2000].any() and np.array_equal(regrown[0][2000:], fresh[0][2000:])
    # a smaller set is the first plates of a cached larger one
    monkeypatch.setattr(tr, "CACHE", tmp_path / "c")
    fresh_small = tr.synth_set(9, 1500, "train", workers=1)
    monkeypatch.setattr(tr, "CACHE", tmp_path / "a")
    sliced = tr.synth_set(9, 1500, "train", workers=1)
    assert np.array_equal(sliced[0], fresh_small[0]) and list(sliced[1]) == list(fresh_small[1])


def test_label_fixes_correct_drop_and_go_stale(tmp_path):
    """Corrections read by eye replace RapidOCR's text, an empty one drops the crop, and a correction
    whose RapidOCR text has since changed (the labeller was rerun) is not applied to the new text."""
    (tmp_path / "labels.csv").write_text(
        "file,text,confidence,split\n"
        "a.png,NOHZ1002,0.95,valid\n"      # a German seal read as O
        "b.png,NN3126,0.91,train\n"        # Thai letters
        "c.png,B61RCV,0.97,train\n"        # relabelled since the check
        "d.png,WM64UMA,0.99,train\n")
    fixes = tmp_path / "fixes.csv"
    fixes.write_text("file,was,text,reason\n"
                     "a.png,NOHZ1002,NHZ1002,read by eye\n"
                     "b.png,NN3126,,Thai letters\n"
                     "c.png,B6IROV,B61RCV,read by eye\n")
    rows = pseudolabel.read_labels(tmp_path, fixes_path=fixes)
    assert [(r["file"], r["text"], r.get("checked")) for r in rows] == [
        ("a.png", "NHZ1002", "1"), ("c.png", "B61RCV", None), ("d.png", "WM64UMA", None)]
    raw = pseudolabel.read_labels(tmp_path, fixes=False, fixes_path=fixes)
    assert [r["text"] for r in raw] == ["NOHZ1002", "NN3126", "B61RCV", "WM64UMA"]


def test_shipped_label_fixes_are_well_formed():
    fixes = pseudolabel.label_fixes()
    assert len(fixes) > 100
    for name, (was, text) in fixes.items():
        assert name.endswith(".png") and name.split("-")[0] in ("train", "valid")
        assert pseudolabel.PLATE_LIKE.match(was)    # only RapidOCR reads the labeller keeps are checked
        assert text == "" or (text != was and text.isalnum() and text.upper() == text)


def test_hand_labels_need_two_readers_to_agree(tmp_path, monkeypatch):
    """Crops RapidOCR skipped go onto numbered sheets; only what two readers read alike is kept (a
    text, or 'unreadable' so the crop is not offered again), and read_labels adds the kept texts."""
    from models.training import handlabel
    from models.training.datasets import Scene
    pseudo = tmp_path / "pseudo"
    (pseudo / "crops").mkdir(parents=True)
    photo = tmp_path / "scene.jpg"
    Image.new("RGB", (400, 300), "grey").save(photo)
    boxes = [(10, 10, 110, 40), (150, 100, 170, 110), (200, 200, 300, 230), (50, 150, 150, 180)]
    monkeypatch.setattr(handlabel, "scenes", lambda split: [Scene(photo, 400, 300, boxes)])
    labelled = crop_name("train", photo, 0)   # the 20 px box is skipped: k counts wide boxes
    Image.new("RGB", (112, 36)).save(pseudo / "crops" / labelled)
    (pseudo / "labels.csv").write_text(f"file,text,confidence,split\n{labelled},ABC123,0.95,train\n")
    hand = tmp_path / "hand.csv"
    monkeypatch.setattr(handlabel, "HAND_LABELS", hand)
    files = handlabel.unlabelled_crops(pseudo, "train")
    assert files == [crop_name("train", photo, k) for k in (1, 2)]
    assert Image.open(pseudo / "crops" / files[0]).size == (112, 37)   # box + 6 % / 12 % margins
    assert handlabel.contact_sheets(pseudo, files, tmp_path / "sheets", per_sheet=1) == 2
    assert (tmp_path / "sheets" / "sheet-002.png").exists()
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("sheet,cell,text\n1,1,7 xyz 12\n2,1,\n")
    b.write_text("sheet,cell,text\n1,1,7XYZ12\n2,1,8QR\n")
    texts, unreadable, differ = handlabel.merge(tmp_path / "sheets", a, b, "train", hand)
    assert (texts, unreadable, differ) == (1, 0, [(files[1], "", "8QR")])
    rows = pseudolabel.read_labels(pseudo, hand_path=hand)
    assert [(r["file"], r["text"], r.get("checked")) for r in rows] == [
        (labelled, "ABC123", None), (files[0], "7XYZ12", "1")]
    assert [r["file"] for r in pseudolabel.read_labels(pseudo, fixes=False, hand_path=hand)] == [labelled]
    # agreed crops are not offered again, and a second merge adds nothing twice
    assert handlabel.unlabelled_crops(pseudo, "train") == [files[1]]
    b.write_text("sheet,cell,text\n1,1,7XYZ12\n2,1,\n")
    assert handlabel.merge(tmp_path / "sheets", a, b, "train", hand) == (0, 1, [])
    assert len(handlabel.hand_labels(hand)) == 2
    # the labelling run saves the crops read by eye as well (RapidOCR skipped them): cut from the scene
    (pseudo / "crops" / files[0]).unlink()
    assert [r["file"] for r in pseudolabel.read_labels(pseudo, hand_path=hand)] == [labelled]
    assert handlabel.save_crops(pseudo, {files[0]}) == 1
    assert Image.open(pseudo / "crops" / files[0]).size == (112, 37)
    assert [r["file"] for r in pseudolabel.read_labels(pseudo, hand_path=hand)] == [labelled, files[0]]


def test_scene_variants_frame_real_plates_as_the_unit_frames_a_detector_box():
    """Real training variants cut from the scene: around the plate, loose or a little tight as the
    unit's two framings of a detector box are, never a crop of something else."""
    from models.training.synth import detector_framing
    rng = np.random.default_rng(0)
    box = (100.0, 50.0, 200.0, 80.0)
    got = np.array([detector_framing(rng, box) for _ in range(2000)])
    left, top = (100 - got[:, 0]) / 100, (50 - got[:, 1]) / 30
    right, bottom = (got[:, 2] - 200) / 100, (got[:, 3] - 80) / 30
    for edge, lo in ((left, -0.06), (right, -0.06), (top, -0.10), (bottom, -0.10)):
        assert edge.min() >= lo - 1e-9
        assert 0.02 < np.median(edge) < 0.2                 # half as the box is, half widened
    assert (left > 0.25).mean() > 0.03 and (top > 0.4).mean() > 0.03   # loose framings do occur
    again = np.array([detector_framing(np.random.default_rng(0), box) for _ in range(1)])
    assert np.allclose(again[0], got[0])


def test_shipped_hand_labels_are_well_formed():
    from models.training import handlabel
    fixes = pseudolabel.label_fixes()
    for name, (text, split) in handlabel.hand_labels().items():
        assert name.startswith(split + "-") and name.endswith(".png") and name not in fixes
        assert text == "" or handlabel.TEXT.match(text)


def test_two_row_samples_are_laid_side_by_side_and_labelled_top_row_first():
    sc = scenes("train")[:20]
    _assert_seeded(synth.two_row_sample, sc, 4)
    rng = np.random.default_rng(9)
    for _ in range(10):
        plate, gap = synth.render_two_row(rng, synth._fonts()[0])
        assert 0.4 < gap < 0.6 and 3 <= len(plate.text) <= 9 and set(plate.text) <= set(ALPHABET)
        assert plate.image.width < 2 * plate.image.height          # square-ish: two rows
        crop, text = synth.two_row_sample(rng, sc)
        assert crop.width > 2.5 * crop.height                      # the rows now side by side
        assert 3 <= len(text) <= 9 and set(text) <= set(ALPHABET)


def test_plates_are_cut_only_from_full_size_scenes(tmp_path):
    """A bundle's scenes are downscaled backgrounds: cutting a labelled box from one would train the
    reader on the wrong pixels, so it is refused by name."""
    sc = scenes("train")[0]
    full = pseudolabel.full_scene(sc.image, (sc.width, sc.height))
    assert full.size == (sc.width, sc.height) and full.mode == "RGB"
    small = tmp_path / "small.jpg"
    full.resize((sc.width // 4, sc.height // 4)).save(small)
    with pytest.raises(ValueError, match="full-size training scenes"):
        pseudolabel.full_scene(small, (sc.width, sc.height))
    name, (scene, box) = next(iter(pseudolabel.scene_boxes("train").items()))
    assert name.endswith(".png") and scene.image.exists() and box[2] > box[0]


def test_box_calibration_brings_the_median_box_to_the_plates_size():
    """Boxes 0.80 and 0.84 of the plates' widths (0.9 of their heights) are calibrated by 1/0.82 and
    1/0.9; a plate under the readable width, boxed three times too big, does not count."""
    from models.training.train_detector import READABLE, box_calibration
    from unit.detect import BOX_UNIT, STRIDE
    from unit.preprocess import letterbox
    im = Image.new("RGB", (640, 360))
    plates = np.array([[100, 100, 260, 140], [400, 200, 500, 230], [300, 300, 320, 306]], np.float32)
    shrink = [(0.80, 0.9), (0.84, 0.9), (3.0, 3.0)]
    assert plates[2, 2] - plates[2, 0] < READABLE * im.width

    def run(x, which=(0, 1, 2)):
        _, lb = letterbox(im)
        out = np.zeros((x.shape[0] // STRIDE, x.shape[1] // STRIDE, 5), np.float32)
        for k in which:
            x0, y0, x1, y1 = plates[k] * lb.scale + [lb.pad_x, lb.pad_y, lb.pad_x, lb.pad_y]
            cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
            hw, hh = (x1 - x0) / 2 * shrink[k][0], (y1 - y0) / 2 * shrink[k][1]
            gx, gy = int(cx // STRIDE), int(cy // STRIDE)
            ccx, ccy = (gx + 0.5) * STRIDE, (gy + 0.5) * STRIDE
            out[gy, gx] = [1.0, (ccx - cx + hw) / BOX_UNIT, (ccy - cy + hh) / BOX_UNIT,
                           (cx + hw - ccx) / BOX_UNIT, (cy + hh - ccy) / BOX_UNIT]
        return out

    sx, sy = box_calibration(run, [(im, plates)], 0.5)
    assert sx == pytest.approx(1 / 0.82, abs=2e-3) and sy == pytest.approx(1 / 0.9, abs=2e-3)
    assert box_calibration(lambda x: run(x, which=(0, 1)), [(im, plates)], 0.5) == [sx, sy]
    # nothing found: no calibration
    assert box_calibration(lambda x: run(x, which=()), [(im, plates)], 0.5) == [1.0, 1.0]


def test_detector_epochs_zero_needs_a_file_to_re_export():
    from models.training import train_detector
    with pytest.raises(SystemExit) as e:
        train_detector.main(["--epochs", "0"])
    assert e.value.code == 2


def test_detector_input_size_is_checked_by_name():
    from models.training import train_detector
    assert train_detector.input_size("448x256") == (448, 256)
    assert train_detector.input_size("672X384") == (672, 384)
    for bad in ("448", "447x256", "448x250", "32x32", "wide"):
        with pytest.raises(argparse.ArgumentTypeError):
            train_detector.input_size(bad)
    with pytest.raises(SystemExit) as e:
        train_detector.main(["--input", "447x256", "--epochs", "0", "--init-tflite", "x"])
    assert e.value.code == 2


def test_reader_shares_are_checked_by_name(capsys):
    """A share outside 0..1 stops the run before any data is rendered, naming the option."""
    from models.training import train_reader
    for opt in ("--frames", "--synth-framing", "--scene-variants"):
        with pytest.raises(SystemExit) as e:
            train_reader.main([opt, "1.5"])
        assert e.value.code == 2
        assert f"{opt} is a share between 0 and 1" in capsys.readouterr().err


# ---------------------------------------------------------------- the benchmark folders' train / valid split

def _sha1_valid(name: str) -> bool:
    """The split as ../shared/data/SOURCES.md states it, written out again here on purpose."""
    import hashlib
    return int(hashlib.sha1(name.encode()).hexdigest(), 16) % 8 == 0


def test_real_plates_are_the_train_split_of_the_benchmark_folders():
    """The counts SOURCES.md gives for each split, no file in both, and every training plate's name
    outside the valid rule (a photo by its stem, a crop by its file name)."""
    from collections import Counter
    from models.training.realplates import real_plates
    train, valid = real_plates("train"), real_plates("valid")
    assert Counter(p.source for p in train) == {"endtoend/us": 90, "endtoend/eu": 43, "endtoend/br": 46,
                                                "crops/us": 277}
    assert Counter(p.source for p in valid) == {"endtoend/us": 17, "endtoend/eu": 14, "endtoend/br": 12,
                                                "crops/us": 79}
    assert not {p.image for p in train} & {p.image for p in valid}
    for p in train:
        assert not _sha1_valid(p.image.stem if p.box is not None else p.image.name), p.image
        assert p.text.isalnum() and p.text.upper() == p.text
    photo = next(p for p in train if p.source == "endtoend/us")
    x0, y0, x1, y1 = photo.box
    assert 0 <= x0 < x1 and 0 <= y0 < y1


def _fake_benchmark(root, n_photos: int = 24, n_crops: int = 24) -> dict[str, str]:
    """A benchmark-shaped folder of blank images, each plate's text unique: text -> split by the rule."""
    split = {}
    us = root / "endtoend" / "us"
    us.mkdir(parents=True)
    for i in range(n_photos):
        name, text = f"car{i:03d}", f"P{i:03d}XY"
        Image.new("RGB", (320, 240), (90, 90, 90)).save(us / f"{name}.jpg")
        (us / f"{name}.txt").write_text(f"{name}.jpg\t100\t100\t80\t30\t{text}\n")
        split[text] = "valid" if _sha1_valid(name) else "train"
    crops = root / "crops" / "us"
    crops.mkdir(parents=True)
    rows = ["file,state,plate"]
    for i in range(n_crops):
        name, text = f"ca{i}.png", f"C{i:03d}ZZ"
        Image.new("RGB", (120, 60), (200, 200, 200)).save(crops / name)
        rows.append(f"{name},ca,{text}")
        split[text] = "valid" if _sha1_valid(name) else "train"
    (crops / "groundtruth.csv").write_text("\n".join(rows) + "\n")
    assert set(split.values()) == {"train", "valid"}
    return split


def test_no_valid_file_ever_enters_training(tmp_path, monkeypatch):
    """train_reader's training data, built as a run builds it: every train-split plate of the benchmark
    folders with its variants, no valid-split plate and no valid-split file opened; `--no-benchmark`
    opens no benchmark file at all."""
    from models.training import realplates, train_reader as tr
    split = _fake_benchmark(tmp_path / "bench")
    monkeypatch.setattr(realplates, "BENCHMARK", tmp_path / "bench")
    monkeypatch.setattr(tr, "CACHE", tmp_path / "cache")
    empty = lambda *a, **k: (np.zeros((0, 40, 128), np.uint8), [])
    monkeypatch.setattr(tr, "synth_set", lambda seed, n, split, *a, **k: (np.zeros((2, 40, 128), np.uint8),
                                                                          [f"SYN{split}", "SYN2"]))
    monkeypatch.setattr(tr, "pseudo_set", empty)
    opened = []
    real_image = realplates._image.__wrapped__
    monkeypatch.setattr(realplates, "_image", lambda path: opened.append(path) or real_image(path))
    args = tr.build_parser().parse_args(["--real-variants", "2", "--seed", "3"])
    data = tr.training_data(args)
    texts = Counter(data["y"])
    assert {t for t, s in split.items() if s == "train"} == set(texts) - {"SYNtrain", "SYN2"}
    assert all(texts[t] == 3 for t, s in split.items() if s == "train")     # the plate + 2 variants
    assert not [t for t, s in split.items() if s == "valid" and t in texts]
    assert opened and all(not _sha1_valid(p.stem if p.suffix == ".jpg" else p.name) for p in opened)
    assert data["counts"]["benchmark_train_real_with_variants"] == 3 * sum(s == "train" for s in split.values())
    assert data["x"].shape == (len(data["y"]), 40, 128)
    # photos weighted up: twice the copies for a plate cut from a photo, crops as before
    weighted = Counter(tr.training_data(tr.build_parser().parse_args(["--real-variants", "2", "--seed", "3",
                                                                      "--photo-weight", "2"]))["y"])
    assert all(weighted[t] == (5 if t[0] == "P" else 3) for t, s in split.items() if s == "train")
    assert not [t for t, s in split.items() if s == "valid" and t in weighted]
    # the AGPL-free switch: nothing from the benchmark folders, not even opened
    opened.clear()
    free = tr.training_data(tr.build_parser().parse_args(["--no-benchmark"]))
    assert not opened and set(free["y"]) == {"SYNtrain", "SYN2"}
    assert "benchmark_train_real_with_variants" not in free["counts"]


def test_real_variants_are_seeded_and_keep_the_plate_readable_in_size():
    """The same seed gives the same inputs; every variant is the reader's input size, not blank."""
    from models.training.realplates import real_plates, render_real
    plates = [p for p in real_plates("train") if p.source in ("endtoend/us", "crops/us")][::40]
    a, ya = render_real("train", 3, 5, plates)
    b, yb = render_real("train", 3, 5, plates)
    assert np.array_equal(a, b) and ya == yb and len(ya) == 4 * len(plates)
    assert a.shape[1:] == (40, 128) and (a.reshape(len(a), -1).std(axis=1) > 3).mean() > 0.9


def test_eval_split_reads_only_that_split(tmp_path):
    """`alpr-unit eval --split valid` measures the valid files only (the real recogniser runs)."""
    from unit.evaluate import load_items
    split = _fake_benchmark(tmp_path, n_photos=16, n_crops=16)
    fmt, items = load_items(tmp_path / "crops" / "us", "valid")
    assert fmt == "crops" and {i.plate for i in items} == {t for t, s in split.items() if s == "valid" and t[0] == "C"}
    _, items = load_items(tmp_path / "endtoend" / "us", "train")
    assert {i.plate for i in items} == {t for t, s in split.items() if s == "train" and t[0] == "P"}
    r = evaluate(tmp_path / "crops" / "us", split="valid")
    assert r["split"] == "valid" and r["images"] == sum(s == "valid" and t[0] == "C" for t, s in split.items())
    from unit.cli import main as cli
    with pytest.raises(SystemExit) as e:
        cli(["eval", str(tmp_path / "crops" / "us"), "--split", "test"])
    assert e.value.code == 2


def test_fine_tune_names_its_options():
    """The library entry point refuses an option the command line does not have, by name."""
    from models.training.train_reader import fine_tune
    with pytest.raises(TypeError, match="no option 'lerning_rate'"):
        fine_tune("models/reader.tflite", "/nonexistent", lerning_rate=1e-3)


def test_the_choosing_rule_fails_each_clause_by_name():
    """models/README.md's rule: US photos +1 (plate found not lower), US crops +2, EU / BR at most -1,
    8 MB, the shipped reader's graph; the graph is read from the real files."""
    from models.training.choose import graph, verdict
    g = graph(Path("models/reader.tflite"))
    assert g and g[0][0] in ("QUANTIZE", "CONV_2D") and any(op == "CONV_2D" for op, _ in g)

    def m(us, found, crops, eu, br, size=1_000_000, graph_=g):
        s = lambda n, d=None: {"exact_n": n, "detected": d}
        return {"us_photos": s(us, found), "us_crops": s(crops), "eu_photos": s(eu), "br_photos": s(br),
                "bytes": size, "reader_graph": graph_}
    base = m(11, 0.94, 56, 13, 9)
    assert verdict(base, m(12, 0.94, 58, 12, 8)) == []
    fails = verdict(base, m(11, 0.88, 57, 11, 7, size=9_000_000, graph_=g[:-1]))
    assert [f.split(" ")[0] for f in fails] == ["US", "US", "EU", "BR", "US", "models", "the"]
    assert "US photos +0" in fails[0] and "US crops +1" in fails[1] and "EU photos -2" in fails[2]


def test_labels_read_by_eye_alone_need_no_ocr(tmp_path):
    """`pseudolabel --read-by-eye-only`: the corrected reads come out corrected, a dropped one stays
    out, the hand-read crops are cut from their scenes, and read_labels sees exactly those."""
    fixes = pseudolabel.label_fixes()
    kept = [n for n, (was, text) in fixes.items() if text and n.startswith("train-")][:2]
    dropped = next(n for n, (was, text) in fixes.items() if not text)
    from models.training import handlabel
    hand = next(n for n, (text, split) in handlabel.hand_labels().items() if text and split == "train")
    (tmp_path / "fixes.csv").write_text("file,was,text,reason\n" + "".join(
        f"{n},{fixes[n][0]},{fixes[n][1]},x\n" for n in kept + [dropped]))
    (tmp_path / "hand.csv").write_text(f"file,text,split,reason\n{hand},{handlabel.hand_labels()[hand][0]},train,x\n")
    out = tmp_path / "pseudo"
    assert pseudolabel.write_eye_labels(out, tmp_path / "fixes.csv", tmp_path / "hand.csv") == 0
    rows = pseudolabel.read_labels(out, fixes_path=tmp_path / "fixes.csv", hand_path=tmp_path / "hand.csv")
    assert sorted((r["file"], r["text"]) for r in rows) == sorted(
        [(n, fixes[n][1]) for n in kept] + [(hand, handlabel.hand_labels()[hand][0])])
    assert all((out / "crops" / r["file"]).stat().st_size > 0 for r in rows)
    assert not (out / "crops" / dropped).exists()


def test_missing_benchmark_folders_stop_the_run_unless_left_out(tmp_path, monkeypatch):
    """A machine without ../shared/data/benchmark (a GPU bundle) must not train a different model
    without a word: the run stops naming the folder and the switch; --no-benchmark runs."""
    from models.training import realplates, train_reader as tr
    monkeypatch.setattr(realplates, "BENCHMARK", tmp_path / "nowhere")
    monkeypatch.setattr(tr, "CACHE", tmp_path / "cache")
    monkeypatch.setattr(tr, "synth_set", lambda *a, **k: (np.zeros((1, 40, 128), np.uint8), ["SYN1"]))
    monkeypatch.setattr(tr, "pseudo_set", lambda *a, **k: (np.zeros((0, 40, 128), np.uint8), []))
    with pytest.raises(FileNotFoundError, match="nowhere.*--no-benchmark"):
        tr.training_data(tr.build_parser().parse_args([]))
    assert tr.training_data(tr.build_parser().parse_args(["--no-benchmark"]))["y"] == ["SYN1"]
