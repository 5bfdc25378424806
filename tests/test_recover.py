"""The shipped int8 reader, dequantised back into Keras for fine-tuning, reads like the shipped model.

Needs the training extras (Keras on TensorFlow); skipped where only the unit's runtime is installed.
"""
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

keras = pytest.importorskip("keras")

from models.training.recover import float_reader, int8_convs  # noqa: E402
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
