"""The shipped int8 reader, dequantised back into Keras for fine-tuning, reads like the shipped model.

Needs the training extras (Keras on TensorFlow); skipped where only the unit's runtime is installed.
"""
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

keras = pytest.importorskip("keras")

from models.training.export import int8_convs  # noqa: E402
from models.training.train_reader import float_reader  # noqa: E402
from unit.ctc import best_path  # noqa: E402
from unit.litert import Model  # noqa: E402
from unit.preprocess import reader_input  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
VALID = ROOT.parent / "shared" / "data" / "train" / "open-images-plates" / "valid"


def _real_crops(n: int) -> np.ndarray:
    xs = []
    for label in sorted((VALID / "labels").glob("*.json")):
        d = json.loads(label.read_text())
        im = Image.open(VALID / d["image"]).convert("RGB")
        for p in d["plates"]:
            x0, y0, x1, y1 = (int(v) for v in p["box_xyxy"])
            if x1 - x0 >= 30:
                xs.append(reader_input(im.crop((x0, y0, x1, y1))))
        if len(xs) >= n:
            break
    return np.stack(xs)[..., None].astype(np.float32) / 255.0


def test_dequantised_reader_matches_the_int8_reader():
    model, width = float_reader(ROOT / "models" / "reader.tflite")
    assert width == json.loads((ROOT / "models" / "reader.json").read_text())["width"]
    x = _real_crops(24)
    q = Model(ROOT / "models" / "reader.tflite")
    lq = np.stack([q.run(x[i:i + 1])[0] for i in range(len(x))])
    lf = np.asarray(model.predict(x, verbose=0))
    assert np.corrcoef(lf.ravel(), lq.ravel())[0, 1] > 0.99
    same = sum(best_path(a) == best_path(b) for a, b in zip(lf, lq))
    assert same >= 0.9 * len(x)


def test_a_model_of_another_shape_is_refused():
    assert len(int8_convs(ROOT / "models" / "reader.tflite")) == 9
    with pytest.raises(ValueError, match="detector.tflite"):
        float_reader(ROOT / "models" / "detector.tflite")


def test_plain_weights_round_trip_between_runs(tmp_path):
    """A --weights-only run (any Keras backend, e.g. on a GPU machine without TensorFlow) hands its
    weights to `--export` as a plain array file: they must load into a fresh net unchanged, batch-norm
    statistics included, and give the same logits."""
    from models.training.train_reader import build_model, load_plain_weights, save_plain_weights
    a = build_model(1.0)
    rng = np.random.default_rng(0)
    a.set_weights([rng.normal(0, 0.1, w.shape).astype(np.float32) + (1.0 if "variance" in v.path else 0.0)
                   for w, v in zip(a.get_weights(), a.weights)])
    save_plain_weights(a, tmp_path)
    b = build_model(1.0)
    load_plain_weights(b, tmp_path / "reader.weights.npz")
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    x = rng.random((2, 40, 128, 1), dtype=np.float32)
    np.testing.assert_allclose(a.predict(x, verbose=0), b.predict(x, verbose=0), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError):
        load_plain_weights(build_model(1.5), tmp_path / "reader.weights.npz")


def test_dequantised_detector_finds_what_the_int8_detector_finds():
    """Fine-tuning the shipped detector starts from its int8 file: the float net rebuilt from it (each
    conv and depthwise conv in place, batch norm folded) must give the same boxes on real frames."""
    from models.training.train_detector import float_detector
    from models.training.train_detector import build_model
    from unit.detect import BOX_UNIT
    from unit.preprocess import DET_H, DET_W, letterbox
    trained = float_detector(ROOT / "models" / "detector.tflite")
    full = build_model(DET_W, DET_H, norm=False)
    full.set_weights(trained.get_weights())
    q = Model(ROOT / "models" / "detector.tflite")
    labels = sorted((VALID / "labels").glob("*.json"))[:12]
    found = 0
    for label in labels:
        x = letterbox(Image.open(VALID / json.loads(label.read_text())["image"]).convert("RGB"))[0]
        x = x[None].astype(np.float32) / 255.0
        a, b = np.asarray(full.predict(x, verbose=0))[0], q.run(x)[0]
        # scores: int8 rounding only, a few output steps at most (the file shipped since the eighth
        # session is itself a re-export of a dequantised net, so its rounding compounds once more)
        assert np.abs(a[..., 0] - b[..., 0]).max() < 6 * q._out["quantization"][0]
        # every cell the int8 file scores as a plate puts the box edges where the float net does; cell
        # by cell, since NMS between two near-tied neighbours may keep either's box
        cells = b[..., 0] >= 0.35
        found += int(cells.sum())
        assert np.abs(a[..., 1:5] - b[..., 1:5])[cells].max(initial=0) * BOX_UNIT < 6.0   # detector px
    assert found > 0


def test_the_reader_cannot_be_loaded_as_a_detector():
    from models.training.train_detector import float_detector
    with pytest.raises(ValueError, match="reader.tflite"):
        float_detector(ROOT / "models" / "reader.tflite")


def test_a_soup_of_one_run_twice_is_that_run(tmp_path):
    """`models.training.soup` averages dequantised readers for `--export`: averaging a run with itself
    gives back its own weights, and runs from different starting models are refused."""
    import shutil
    from models.training.soup import soup
    from models.training.train_reader import build_model, load_plain_weights
    run = tmp_path / "run"
    run.mkdir()
    for name in ("reader.tflite", "reader.json"):
        shutil.copy(ROOT / "models" / name, run / name)
    record = soup([run, run], tmp_path / "soup")
    assert record["folded"] and len(record["soup_of"]) == 2
    model, width = float_reader(run / "reader.tflite")
    averaged = build_model(width, norm=False)
    load_plain_weights(averaged, tmp_path / "soup" / "reader.weights.npz")
    for a, b in zip(model.get_weights(), averaged.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(run / "reader.tflite", other / "reader.tflite")
    card = json.loads((run / "reader.json").read_text())
    (other / "reader.json").write_text(json.dumps({**card, "init_sha256": "0" * 64}))
    with pytest.raises(ValueError, match="different models"):
        soup([run, other], tmp_path / "mixed")
