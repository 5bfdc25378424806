"""Float Keras weights from a shipped int8 reader, so that the shipped model can be fine-tuned.

A training run's float weights live in `cache/`, which is scratch and not in the repository; the
int8 file is what ships and it holds every weight, quantised per output channel with batch norm
folded into the convs. Dequantised into the same architecture built without batch norm
(`build_model(width, norm=False)`), it gives the shipped reads back (checked by `--check`).

    python -m models.training.recover [--tflite models/reader.tflite] [--out cache/reader-shipped.weights.h5]
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


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


def float_detector(path: Path = ROOT / "models" / "detector.tflite"):
    """The shipped detector as a trainable Keras model (no batch norm), at training's free input size.
    The int8 graph may run the convs in another order than Keras built them, so each Keras layer takes
    the first unused file conv of its kernel shape (the FPN's two 1x1 convs differ in input width)."""
    from models.training.train_detector import build_model
    convs = int8_convs(path, depthwise=True)
    model = build_model(norm=False)
    layers = [l for l in model.layers if l.__class__.__name__ in ("Conv2D", "DepthwiseConv2D")]
    if len(layers) != len(convs):
        raise ValueError(f"{path}: {len(convs)} convs, the detector has {len(layers)}")
    used = [False] * len(convs)
    for layer in layers:
        want = tuple((layer.depthwise_kernel if hasattr(layer, "depthwise_kernel") else layer.kernel).shape)
        k = next((i for i, (w, _) in enumerate(convs) if not used[i] and w.shape == want), None)
        if k is None:
            raise ValueError(f"{path}: no conv of shape {want} left for {layer.name}")
        used[k] = True
        layer.set_weights(list(convs[k]))
    return model


def float_reader(path: Path = ROOT / "models" / "reader.tflite"):
    """The shipped reader as a trainable Keras model (no batch norm)."""
    from models.training.train_reader import build_model
    convs = int8_convs(path)
    width = convs[0][0].shape[-1] / 16
    model = build_model(width, norm=False)
    layers = [l for l in model.layers if l.__class__.__name__ == "Conv2D"]
    if len(layers) != len(convs):
        raise ValueError(f"{path}: {len(convs)} convs, the reader at width {width:g} has {len(layers)}")
    for layer, (k, b) in zip(layers, convs):
        if tuple(layer.kernel.shape) != k.shape:
            raise ValueError(f"{path}: conv {layer.name} is {tuple(layer.kernel.shape)}, file has {k.shape}")
        layer.set_weights([k, b])
    return model, width


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tflite", default=str(ROOT / "models" / "reader.tflite"))
    ap.add_argument("--out", default=str(ROOT / "cache" / "reader-shipped.weights.h5"))
    ap.add_argument("--check", action="store_true", help="compare greedy reads with the int8 model on the pseudo-labelled valid crops")
    args = ap.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    model, width = float_reader(Path(args.tflite))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    model.save_weights(args.out)
    print(f"width {width:g}, {model.count_params()} parameters -> {args.out}")
    if args.check:
        from models.training.train_reader import greedy_batch, pseudo_set, tflite_eval
        x, y = pseudo_set("valid", 0, 1)
        if not len(x):
            print("no pseudo-labelled valid crops (run models.training.pseudolabel)", file=sys.stderr)
            return 2
        pf = greedy_batch(model.predict(x[..., None] / 255.0, verbose=0, batch_size=256))
        print(f"valid crops {len(x)}: float exact {np.mean([a == b for a, b in zip(pf, y)]):.3f}, "
              f"int8 exact {tflite_eval(Path(args.tflite), x, y)['exact']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
