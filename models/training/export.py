"""Full-integer int8 TFLite, shared by both models' training scripts: export, and reading the int8
weights back so that a shipped model can be fine-tuned."""
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


def int8_convs(path: Path, depthwise: bool = False) -> list[tuple[np.ndarray, np.ndarray]]:
    """(kernel [kh, kw, in, out], bias [out]) of every CONV_2D, in graph order, dequantised; with
    `depthwise`, DEPTHWISE_CONV_2D too (kernel [kh, kw, ch, 1], as Keras holds it)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    # without the default delegate, so that the constant tensors stay readable
    it = Interpreter(model_path=str(path),
                     experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    it.allocate_tensors()
    details = {t["index"]: t for t in it.get_tensor_details()}

    def dequant(i: int) -> np.ndarray:
        q = details[i]["quantization_parameters"]
        v = it.get_tensor(i).astype(np.float32)
        scales, zps = q["scales"], q["zero_points"]
        axis = q["quantized_dimension"]
        shape = [1] * v.ndim
        shape[axis] = -1
        return (v - zps.reshape(shape)) * scales.reshape(shape) if len(scales) > 1 else (v - zps[0]) * scales[0]

    convs = []
    for op in it._get_ops_details():
        if op["op_name"] == "CONV_2D" or (depthwise and op["op_name"] == "DEPTHWISE_CONV_2D"):
            _, w, b = op["inputs"]
            # CONV_2D [out, kh, kw, in] and DEPTHWISE_CONV_2D [1, kh, kw, ch] both go to Keras's order
            convs.append((dequant(w).transpose(1, 2, 3, 0), dequant(b)))
    return convs
