"""Train the plate detector and export it as a full-integer int8 TFLite model.

    python -m models.training.train_detector [--epochs 24] [--seed 1]

Data: the boxes of ../shared/data/train (Open Images plates, CC BY 4.0; RO dashcam, MIT), with
scale, crop, flip, colour, blur and noise augmentation. The fully convolutional net trains on square
crops and runs on the whole letterboxed frame (unit.preprocess.DET_W x DET_H). Validation and the
score threshold use the sets' own `valid` split. The benchmark folders are never read here.
Writes models/detector.tflite and models/detector.json (figures for the model card).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path
from queue import Queue

import numpy as np
from PIL import Image, ImageFilter

from models.training.datasets import Scene, scenes
from models.training.export import export_int8, int8_convs
from models.training.synth import paste_over
from unit.detect import BOX_UNIT, STRIDE, decode, iou
from unit.preprocess import DET_H, DET_W, letterbox

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / "cache"
CROP = 256


def load_all(items: list[Scene]) -> list[tuple[Image.Image, np.ndarray]]:
    out = []
    for sc in items:
        im = Image.open(sc.image).convert("RGB")
        out.append((im, np.array(sc.boxes, np.float32).reshape(-1, 4)))
    return out


def targets(boxes: np.ndarray, size: int) -> np.ndarray:
    """(G, G, 6): score target, l t r b in BOX_UNIT, positive mask; for boxes in crop pixels."""
    g = size // STRIDE
    t = np.zeros((g, g, 6), np.float32)
    # big boxes first so small ones win where they overlap
    order = np.argsort(-(boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])) if len(boxes) else []
    for x0, y0, x1, y1 in boxes[order] if len(boxes) else []:
        w, h = x1 - x0, y1 - y0
        if w < 6 or h < 3:
            continue
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        rx, ry = max(w * 0.3, STRIDE * 0.75), max(h * 0.3, STRIDE * 0.75)
        gx0, gx1 = int(np.floor((cx - rx) / STRIDE)), int(np.ceil((cx + rx) / STRIDE))
        gy0, gy1 = int(np.floor((cy - ry) / STRIDE)), int(np.ceil((cy + ry) / STRIDE))
        for gy in range(max(0, gy0), min(g, gy1)):
            for gx in range(max(0, gx0), min(g, gx1)):
                px, py = (gx + 0.5) * STRIDE, (gy + 0.5) * STRIDE
                if abs(px - cx) > rx or abs(py - cy) > ry:
                    continue
                l, tp, r, b = px - x0, py - y0, x1 - px, y1 - py
                if min(l, tp, r, b) <= 0:
                    continue
                t[gy, gx] = (1.0, l / BOX_UNIT, tp / BOX_UNIT, r / BOX_UNIT, b / BOX_UNIT, 1.0)
    return t


def sample(rng: np.random.Generator, im: Image.Image, boxes: np.ndarray,
           synthetic: float = 0.0, size: tuple[int, int] = (DET_W, DET_H)) -> tuple[np.ndarray, np.ndarray]:
    if synthetic > 0 and len(boxes):
        boxes = boxes.copy()
        for k, b in enumerate(boxes):
            if b[2] - b[0] >= 12 and b[3] - b[1] >= 6 and rng.random() < synthetic:
                im, boxes[k] = paste_over(rng, im, tuple(float(v) for v in b))
    # scale relative to the letterbox scale the unit will use for this frame
    base = min(size[0] / im.width, size[1] / im.height)
    s = base * float(np.exp(rng.uniform(np.log(0.5), np.log(2.2))))
    nw, nh = max(8, int(im.width * s)), max(8, int(im.height * s))
    scaled = im.resize((nw, nh), Image.BILINEAR)
    b = boxes * s
    if len(b) and rng.random() < 0.8:
        k = int(rng.integers(len(b)))
        cx, cy = (b[k, 0] + b[k, 2]) / 2, (b[k, 1] + b[k, 3]) / 2
        ox = int(cx - rng.uniform(0.15, 0.85) * CROP)
        oy = int(cy - rng.uniform(0.15, 0.85) * CROP)
    else:
        ox = int(rng.integers(min(0, nw - CROP), max(1, nw - CROP + 1)))
        oy = int(rng.integers(min(0, nh - CROP), max(1, nh - CROP + 1)))
    canvas = Image.new("RGB", (CROP, CROP), (114, 114, 114))
    canvas.paste(scaled, (-ox, -oy))
    b = b - np.array([ox, oy, ox, oy], np.float32)
    if len(b):
        cb = b.copy()
        cb[:, [0, 2]] = np.clip(cb[:, [0, 2]], 0, CROP)
        cb[:, [1, 3]] = np.clip(cb[:, [1, 3]], 0, CROP)
        area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
        carea = (cb[:, 2] - cb[:, 0]) * (cb[:, 3] - cb[:, 1])
        b = cb[carea > 0.6 * np.maximum(area, 1e-6)]
    if rng.random() < 0.5:
        canvas = canvas.transpose(Image.FLIP_LEFT_RIGHT)
        if len(b):
            b = np.stack([CROP - b[:, 2], b[:, 1], CROP - b[:, 0], b[:, 3]], axis=1)
    if rng.random() < 0.3:
        canvas = canvas.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.5)))
    a = np.asarray(canvas, np.float32)
    a = a * rng.uniform(0.6, 1.3) + rng.uniform(-30, 30)
    a = a * rng.uniform(0.85, 1.15, size=3)
    if rng.random() < 0.1:
        a = a * rng.uniform(0.25, 0.5)
    if rng.random() < 0.5:
        a = a + rng.normal(0, rng.uniform(2, 10), size=a.shape)
    a = np.clip(a, 0, 255).astype(np.uint8)
    return a, targets(b.reshape(-1, 4), CROP)


def batches(data, batch: int, seed: int, steps: int, q: Queue, synthetic: float = 0.0,
            size: tuple[int, int] = (DET_W, DET_H)) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        idx = rng.integers(len(data), size=batch)
        xs, ts = zip(*(sample(rng, *data[i], synthetic=synthetic, size=size) for i in idx))
        q.put((np.stack(xs).astype(np.float32) / 255.0, np.stack(ts)))
    q.put(None)


def build_model(width: int | None = None, height: int | None = None, norm: bool = True):
    """norm=False: the same net without batch norm, as the int8 file holds it (folded into the convs),
    for fine-tuning the shipped model (`float_detector`)."""
    import keras
    from keras import layers

    def bn(x):
        return layers.BatchNormalization()(x) if norm else x

    def cbr(x, ch, k=3, s=1, d=1):
        x = layers.Conv2D(ch, k, strides=s, dilation_rate=d, padding="same", use_bias=not norm)(x)
        x = bn(x)
        return layers.ReLU()(x)

    def sep(x, ch, s=1):
        x = layers.DepthwiseConv2D(3, strides=s, padding="same", use_bias=not norm)(x)
        x = bn(x)
        x = layers.ReLU()(x)
        return cbr(x, ch, k=1)

    inp = keras.Input((height, width, 3), name="frame")
    x = cbr(inp, 16, s=2)           # /2
    x = cbr(x, 32, s=2)             # /4
    x = sep(x, 32)
    x = cbr(x, 64, s=2)             # /8
    c3 = sep(x, 64)
    c3 = sep(c3, 64)
    x = cbr(c3, 96, s=2)            # /16
    x = cbr(x, 96)
    c4 = cbr(x, 96, d=2)
    up = layers.UpSampling2D(2, interpolation="nearest")(cbr(c4, 64, k=1))
    p3 = layers.Add()([up, cbr(c3, 64, k=1)])
    p3 = cbr(p3, 64)
    h = cbr(p3, 48)
    score = layers.Conv2D(1, 1, activation="sigmoid",
                          bias_initializer=keras.initializers.Constant(-4.0))(h)
    box = layers.Conv2D(4, 1, activation="relu")(h)
    out = layers.Concatenate(name="grid")([score, box])
    return keras.Model(inp, out, name="plate_detector")


def float_detector(path: Path = ROOT / "models" / "detector.tflite"):
    """The shipped detector as a trainable Keras model (no batch norm), at training's free input size.
    The int8 graph may run the convs in another order than Keras built them, so each Keras layer takes
    the first unused file conv of its kernel shape (the FPN's two 1x1 convs differ in input width)."""
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


def make_loss():
    import tensorflow as tf

    def loss(y_true, y_pred):
        pos = y_true[..., 5]
        t, p = y_true[..., 0], tf.clip_by_value(y_pred[..., 0], 1e-5, 1 - 1e-5)
        # focal loss on the score map
        pt = tf.where(t > 0.5, p, 1 - p)
        alpha = tf.where(t > 0.5, 0.5, 0.5)
        focal = -alpha * tf.pow(1 - pt, 2.0) * tf.math.log(pt)
        npos = tf.maximum(tf.reduce_sum(pos), 1.0)
        cls = tf.reduce_sum(focal) / npos
        # IoU loss on positives (distances from the cell centre)
        tl, tt, tr, tb = [y_true[..., i] for i in range(1, 5)]
        pl, ptp, pr, pb = [y_pred[..., i] for i in range(1, 5)]
        ta = (tl + tr) * (tt + tb)
        pa = (pl + pr) * (ptp + pb)
        iw = tf.minimum(tl, pl) + tf.minimum(tr, pr)
        ih = tf.minimum(tt, ptp) + tf.minimum(tb, pb)
        inter = iw * ih
        iou_ = inter / tf.maximum(ta + pa - inter, 1e-6)
        reg = tf.reduce_sum(-tf.math.log(tf.maximum(iou_, 1e-4)) * pos) / npos
        return cls + 2.0 * reg

    return loss


READABLE = 0.06   # plates at least this fraction of the frame width: the ones a gate camera must read


def found(out: np.ndarray, lb, threshold: float) -> np.ndarray:
    """(N, 4) boxes above `threshold` in one detector output, in the original frame's pixels."""
    return np.array([lb.to_original(d[:4]) for d in decode(out, threshold)]).reshape(-1, 4)


def sweep(run, data, thresholds, size: tuple[int, int] = (DET_W, DET_H)) -> list[dict]:
    """Per threshold: recall at IoU >= 0.3 on letterboxed full frames, as the unit runs, over all
    plates and over readable ones (>= READABLE of the frame width); detections per frame. The
    detector runs once per frame, whatever the number of thresholds."""
    hits = {t: {"all": [0, 0], "readable": [0, 0]} for t in thresholds}
    ndet = dict.fromkeys(thresholds, 0)
    for im, boxes in data:
        x, lb = letterbox(im, size)
        out = run(x)
        for t in thresholds:
            got = found(out, lb, t)
            ndet[t] += len(got)
            for b in boxes:
                ok = bool(len(got)) and float(iou(b, got).max()) >= 0.3
                keys = ["all"] + (["readable"] if b[2] - b[0] >= READABLE * im.width else [])
                for k in keys:
                    hits[t][k][0] += ok
                    hits[t][k][1] += 1
    return [{"threshold": t, "recall_all": hits[t]["all"][0] / max(1, hits[t]["all"][1]),
             "recall_readable": hits[t]["readable"][0] / max(1, hits[t]["readable"][1]),
             "readable_plates": hits[t]["readable"][1], "detections_per_frame": ndet[t] / max(1, len(data))}
            for t in thresholds]


def box_calibration(run, data, threshold: float, size: tuple[int, int] = (DET_W, DET_H)) -> list[float]:
    """Per-axis growth [sx, sy] that brings the median detected box to the size of the plate it found
    (readable plates matched at IoU >= 0.3). The reader learns framings centred on the truth box
    (synth.detector_framing); the detector's boxes run a few per cent smaller, more so at a larger
    input, and reading them unscaled lost plates (models/README.md, eighth session)."""
    rw, rh = [], []
    for im, boxes in data:
        x, lb = letterbox(im, size)
        got = found(run(x), lb, threshold)
        if not len(got):
            continue
        for b in boxes:
            w, h = b[2] - b[0], b[3] - b[1]
            if w < READABLE * im.width or h <= 0:
                continue
            u = iou(b, got)
            k = int(u.argmax())
            if u[k] >= 0.3:
                rw.append((got[k, 2] - got[k, 0]) / w)
                rh.append((got[k, 3] - got[k, 1]) / h)
    if not rw:
        return [1.0, 1.0]
    return [round(1.0 / float(np.median(rw)), 4), round(1.0 / float(np.median(rh)), 4)]


def export_detector(model, data, path: Path, norm: bool = True, size: tuple[int, int] = (DET_W, DET_H)) -> None:
    """The net trained on square crops, rebuilt at the unit's frame size; calibrated on 300 frames."""
    full = build_model(size[0], size[1], norm=norm)
    full.set_weights(model.get_weights())
    export_int8(full, lambda: (letterbox(im, size)[0][None].astype(np.float32) / 255.0 for im, _ in data[:300]), path)


def input_size(text: str) -> tuple[int, int]:
    """'672x384' -> (672, 384): both multiples of 16 (two stride-2 levels past the stride-8 grid)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give WIDTHxHEIGHT, e.g. {DET_W}x{DET_H}") from None
    if w < 64 or h < 64 or w % 16 or h % 16:
        raise argparse.ArgumentTypeError(f"{text!r}: width and height must be multiples of 16, at least 64")
    return (w, h)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=24,
                    help="0 with --init-tflite: no training, re-export that detector at --input, with a new "
                         "threshold sweep and box calibration")
    ap.add_argument("--input", type=input_size, default=(DET_W, DET_H), metavar="WxH",
                    help=f"the frame size the exported detector takes (default {DET_W}x{DET_H}, the unit's); "
                         "smaller is quicker on a slow unit and finds fewer small plates (models/README.md). "
                         "Training crops are scaled to it"),
    ap.add_argument("--steps", type=int, default=60, help="batches per epoch")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--out", default=str(ROOT / "models"))
    ap.add_argument("--init", help="start from these Keras weights (continue training)")
    ap.add_argument("--init-tflite", help="start from a shipped int8 detector (fine-tune it, without batch norm)")
    ap.add_argument("--synthetic", type=float, default=0.0,
                    help="chance that each real plate of a training scene is covered by a synthetic plate "
                         "(synth.paste_over: US and EU styles the real scenes lack)")
    args = ap.parse_args(argv)
    if args.epochs < 0 or (args.epochs == 0 and not args.init_tflite):
        ap.error("--epochs must be positive (0 only with --init-tflite, to re-export without training)")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    keras.utils.set_random_seed(args.seed)
    t0 = time.time()
    train = load_all(scenes("train"))
    valid = load_all(scenes("valid"))
    print(f"data: {len(train)} train scenes, {len(valid)} valid scenes ({time.time() - t0:.0f}s)", file=sys.stderr)
    norm = not args.init_tflite
    # the starting file may be the one this run overwrites (models/detector.tflite): record which it was
    init_sha = None
    init_card = None
    if args.init_tflite:
        import hashlib
        init_sha = hashlib.sha256(Path(args.init_tflite).read_bytes()).hexdigest()
        card_path = Path(args.init_tflite).with_suffix(".json")
        if args.epochs == 0 and card_path.is_file():
            init_card = json.loads(card_path.read_text())   # a re-export keeps the training record
        model = float_detector(Path(args.init_tflite))
    else:
        model = build_model()
    if args.init:
        model.load_weights(args.init)
    total = args.epochs * args.steps
    if total:
        sched = keras.optimizers.schedules.CosineDecay(args.lr, total, alpha=0.02)
        model.compile(optimizer=keras.optimizers.Adam(sched), loss=make_loss())
        q: Queue = Queue(maxsize=6)
        threading.Thread(target=batches, args=(train, args.batch, args.seed, total, q, args.synthetic, args.input),
                         daemon=True).start()
    t1 = time.time()
    step = 0
    for epoch in range(args.epochs):
        losses = []
        for _ in range(args.steps):
            item = q.get()
            losses.append(float(model.train_on_batch(*item)))
            step += 1
        print(f"epoch {epoch + 1}: loss {np.mean(losses):.3f} ({time.time() - t1:.0f}s)", file=sys.stderr, flush=True)
        model.save_weights(str(CACHE / "detector.weights.h5"))
    train_s = time.time() - t1
    out = Path(args.out)
    tfl = out / "detector.tflite"
    export_detector(model, train, tfl, norm=norm, size=args.input)
    from unit.litert import Model
    m = Model(tfl, threads=1)
    run = lambda x: m.run(x[None].astype(np.float32) / 255.0)[0]
    swept = sweep(run, valid, (0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4), args.input)
    # the reader is cheap (about 1 ms a crop) and rejects what is not a plate, so take the lowest
    # threshold that keeps the crops to read per frame at or below 4
    fit = [r for r in swept if r["detections_per_frame"] <= 4.0] or swept[-1:]
    best = min(fit, key=lambda r: r["threshold"])
    # measured on the training split, so that the valid split stays a fair judge of the reads
    scale = box_calibration(run, train, best["threshold"], args.input)
    card = {"model": "detector", "file": tfl.name, "bytes": tfl.stat().st_size, "params": int(model.count_params()),
            "input": [args.input[1], args.input[0], 3], "stride": STRIDE, "seed": args.seed, "epochs": args.epochs,
            "steps_per_epoch": args.steps, "batch": args.batch, "init": args.init or args.init_tflite,
            "init_sha256": init_sha,
            "lr": args.lr, "synthetic": args.synthetic, "train_seconds": round(train_s),
            "machine": f"{os.cpu_count()} CPU cores", "valid_sweep": swept, "score_threshold": best["threshold"], "box_scale": scale}
    if init_card is not None:
        card["reexport_of"] = init_card
    (out / "detector.json").write_text(json.dumps(card, indent=2) + "\n")
    print(json.dumps(card, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
