"""Full-integer int8 TFLite export, shared by both models' training scripts."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np


def export_int8(model, samples: Callable[[], Iterable[np.ndarray]], path: Path) -> None:
    """Write `model` as int8-in, int8-out TFLite at batch 1 (the unit runs one frame or crop at a time).

    `samples` yields calibration inputs (float32, batch 1, the model's input domain): real training
    inputs, so the quantisation ranges are those the unit will see.
    """
    import keras
    import tensorflow as tf
    inp = keras.Input(model.input_shape[1:], batch_size=1)
    fixed = keras.Model(inp, model(inp))
    conv = tf.lite.TFLiteConverter.from_keras_model(fixed)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([x] for x in samples())
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(conv.convert())
