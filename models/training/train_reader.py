"""Train the plate reader (CTC OCR) and export it as a full-integer int8 TFLite model.

    python -m models.training.train_reader [--samples 60000] [--epochs 12] [--seed 1]

Data: synthetic plates composited into the *training* scenes (models.training.synth), real plate
crops from the training scenes pseudo-labelled by RapidOCR (models.training.pseudolabel), if present,
and the real plates of the benchmark folders' *train* split (models.training.realplates: US/EU/BR
photos and US crops, `--real-variants` augmented copies each; `--no-benchmark` leaves these
AGPL-3.0 folders out). The benchmark's valid split is never read here: models.training.choose
measures candidates on it. The per-epoch report uses a separate synthetic seed and the
pseudo-labelled crops of the training scenes' own `valid` split.
As a library, `fine_tune(init_tflite, out, extra=..., **options)` fine-tunes a shipped reader.
Writes models/reader.tflite and models/reader.json (figures for the model card). On a machine without
TensorFlow (any Keras backend), `--weights-only` writes the weights and a training record instead, and
`--export DIR` turns them into the int8 model where TensorFlow is installed.
"""
from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import sys
import time
import multiprocessing
from pathlib import Path

import numpy as np
from PIL import Image

from models.training.datasets import scenes
from models.training.export import export_int8, int8_convs
from unit.ctc import ALPHABET, NUM_CLASSES, best_path, encode
from unit.preprocess import READER_H, READER_W, reader_input

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / "cache"
MAX_LABEL = 10


def _render(sample, seed: int, n: int, split: str) -> tuple[np.ndarray, list[str]]:
    """n crops of `sample(rng, scenes)` from one seed, as the reader sees them."""
    rng = np.random.default_rng(seed)
    sc = scenes(split)
    xs = np.zeros((n, READER_H, READER_W), np.uint8)
    ys = []
    for i in range(n):
        crop, text = sample(rng, sc)
        xs[i] = reader_input(crop)
        ys.append(text)
    return xs, ys


def _synth_chunk(args: tuple) -> tuple[np.ndarray, list[str]]:
    seed, n, split, share, frames = args   # share framed as a detector box, share in plate frames
    from models.training.synth import reader_sample
    return _render(functools.partial(reader_sample, detector_share=share, frames=frames), seed, n, split)


def _render_in_workers(chunk, jobs: list[tuple], workers: int, what: str, n: int, path: Path,
                       xs: list[np.ndarray], ys: list[str]) -> tuple[np.ndarray, list[str]]:
    """Render `jobs` with `chunk` in worker processes after the chunks already in xs / ys, and cache
    the whole set at `path`."""
    t = time.time()
    # spawned, not forked: a parent holding inference threads (a test that ran the recogniser first)
    # can fork a worker that waits forever on a lock one of those threads held
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        for x, y in pool.imap(chunk, jobs):
            xs.append(x); ys.extend(y)
            print(f"  {what}: {len(ys)}/{n} ({time.time() - t:.0f}s)", file=sys.stderr, flush=True)
    x = np.concatenate(xs) if xs else np.zeros((0, READER_H, READER_W), np.uint8)
    CACHE.mkdir(exist_ok=True)
    np.savez(path, x=x, y=np.array(ys))
    return x, ys


def synth_set(seed: int, n: int, split: str, workers: int = 2,
              framing: float = 0.0, frames: float = 0.0) -> tuple[np.ndarray, list[str]]:
    """n synthetic plates of a seed; `framing`: the share cropped as the unit frames a detector box
    (synth.detector_framing) rather than by synth.jitter_box; `frames`: the share of US plates drawn
    in a dealer's plate frame (synth.plate_frame)."""
    tag = (f"-f{framing:g}" if framing else "") + (f"-pf{frames:g}" if frames else "")
    path = CACHE / f"reader-synth-{split}-s{seed}{tag}-n{n}.npz"
    if path.exists():
        z = np.load(path)
        return z["x"], list(z["y"])
    chunk = 1000
    # each chunk of 1,000 has its own seed, so any cached set of the same seed holds this one's first chunks
    cached = {int(q.stem.rsplit("-n", 1)[1]): q for q in CACHE.glob(f"reader-synth-{split}-s{seed}{tag}-n*.npz")}
    larger = [m for m in cached if m > n]
    if larger:
        z = np.load(cached[min(larger)])
        return z["x"][:n], list(z["y"][:n])
    jobs = [(seed * 100003 + k, min(chunk, n - k * chunk), split, framing, frames)
            for k in range((n + chunk - 1) // chunk)]
    xs, ys = [], []
    done = [m for m in cached if m < n and m % chunk == 0]
    if done:
        z = np.load(cached[max(done)])
        xs.append(z["x"]); ys.extend(z["y"])
        jobs = jobs[max(done) // chunk:]
    return _render_in_workers(_synth_chunk, jobs, workers, f"synth {split}", n, path, xs, ys)


def _two_row_chunk(args: tuple) -> tuple[np.ndarray, list[str]]:
    seed, n, split = args
    from models.training.synth import two_row_sample
    return _render(two_row_sample, seed, n, split)


def two_row_set(seed: int, n: int, split: str, workers: int = 2) -> tuple[np.ndarray, list[str]]:
    """n synthetic two-row plates of a seed, each laid side by side as the unit reads them
    (synth.two_row_sample); cached like synth_set."""
    path = CACHE / f"reader-tworow-{split}-s{seed}-n{n}.npz"
    if path.exists():
        z = np.load(path)
        return z["x"], list(z["y"])
    chunk = 500
    jobs = [(seed * 100019 + 7 + k, min(chunk, n - k * chunk), split) for k in range((n + chunk - 1) // chunk)]
    return _render_in_workers(_two_row_chunk, jobs, workers, f"two-row {split}", n, path, [], [])


def pseudo_set(split: str, variants: int, seed: int, min_conf: float = 0.0,
               fixes: bool = True, hand: bool = True, scene_share: float = 0.0) -> tuple[np.ndarray, list[str]]:
    """Real crops with pseudo-labels (RapidOCR confidence >= `min_conf`); training crops get `variants`
    damaged copies each, `scene_share` of them cut afresh from the scene around the box as a detector
    box is (see `detector_framing`); `fixes`: with the corrections read by eye, `hand`: and the crops
    read by eye that RapidOCR skipped (pseudolabel.read_labels). Cached by the labels' hash, so
    parallel runs share one build."""
    labels = CACHE / "pseudo" / "labels.csv"
    if not labels.exists():
        return np.zeros((0, READER_H, READER_W), np.uint8), []
    from models.training.pseudolabel import read_labels
    rows = read_labels(CACHE / "pseudo", fixes, hand=hand)
    # keyed by the labels actually read, whichever files (and corrections) they came from
    digest = hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()[:12]
    wide = f"-w{scene_share:g}" if scene_share else ""
    path = CACHE / f"reader-pseudo-{split}-v{variants}-s{seed}-c{min_conf:g}{wide}-{digest}.npz"
    if path.exists():
        z = np.load(path)
        return z["x"], list(z["y"])
    x, y = _pseudo_set(rows, split, variants, seed, min_conf, scene_share)
    np.savez(path, x=x, y=np.array(y))
    return x, y


def _pseudo_set(rows: list[dict[str, str]], split: str, variants: int, seed: int, min_conf: float,
                scene_share: float = 0.0):
    from models.training.pseudolabel import full_scene, scene_boxes
    from models.training.synth import damage, detector_framing, jitter_box
    rng = np.random.default_rng(seed)
    where = scene_boxes(split) if scene_share and variants else {}
    scene = functools.lru_cache(maxsize=4)(full_scene)
    xs, ys = [], []
    for row in rows:
        # a label read by eye is kept whatever RapidOCR's confidence was
        if row["split"] != split or (not row.get("checked") and float(row["confidence"]) < min_conf):
            continue
        im = Image.open(CACHE / "pseudo" / "crops" / row["file"]).convert("RGB")
        xs.append(reader_input(im)); ys.append(row["text"])
        for _ in range(variants):
            if row["file"] in where and rng.random() < scene_share:
                # cut from the scene with real surroundings, framed as the unit frames a detector box
                src, box = where[row["file"]]
                sc = scene(src.image, (src.width, src.height))
                x0, y0, x1, y1 = detector_framing(rng, box)
                v = sc.crop((int(max(0, x0)), int(max(0, y0)), int(min(sc.width, x1)), int(min(sc.height, y1))))
            else:
                # the crop carries a margin of ~6%/12%; re-crop inside it and damage
                w, h = im.size
                box = jitter_box(rng, (w * 0.057, h * 0.107, w * 0.943, h * 0.893), scale=0.7)
                v = im.crop(tuple(int(round(b)) for b in box))
            xs.append(reader_input(damage(rng, v) if rng.random() < 0.7 else v)); ys.append(row["text"])
    return (np.stack(xs) if xs else np.zeros((0, READER_H, READER_W), np.uint8)), ys


def real_set(variants: int, seed: int, photo_weight: float = 1.0) -> tuple[np.ndarray, list[str]]:
    """The benchmark folders' *train* split (realplates.real_plates), each plate once as the unit
    frames it and `variants` augmented copies (`photo_weight` times as many for a plate cut from a
    photo); cached by the plates' list, so a relabelled or re-split folder builds afresh. Only 'train'
    is ever asked for here."""
    from models.training import realplates
    plates = realplates.real_plates("train")
    if not plates:
        # silently training without them would give another model than the command asked for
        raise FileNotFoundError(f"{realplates.BENCHMARK}: no benchmark folders with labelled plates; "
                                "give --no-benchmark to train without them")
    key = json.dumps([realplates.AUGMENT_VERSION] + [(str(p.image), p.text, p.box) for p in plates])
    pw = f"-p{photo_weight:g}" if photo_weight != 1.0 else ""
    path = CACHE / f"reader-real-train-v{variants}{pw}-s{seed}-{hashlib.sha256(key.encode()).hexdigest()[:12]}.npz"
    if path.exists():
        z = np.load(path)
        return z["x"], list(z["y"])
    t = time.time()
    weights = {f"endtoend/{c}": photo_weight for c in realplates.PHOTO_SETS}
    x, y = realplates.render_real("train", variants, seed, plates, weights)
    print(f"  real plates: {len(plates)} -> {len(y)} inputs ({time.time() - t:.0f}s)", file=sys.stderr, flush=True)
    CACHE.mkdir(exist_ok=True)
    np.savez(path, x=x, y=np.array(y))
    return x, y


def training_data(args: argparse.Namespace, extra: tuple[np.ndarray, list[str]] | None = None) -> dict:
    """Everything a run trains and reports on, by the options `build_parser` defines: 'x', 'y' (the
    training inputs and texts), 'counts' per source, and the per-epoch report's sets."""
    x_syn, y_syn = synth_set(args.seed, args.samples, "train", args.workers, args.synth_framing, args.frames)
    x_sv, y_sv = synth_set(args.seed + 1000, 2000, "valid", args.workers)
    x_pt, y_pt = pseudo_set("train", args.pseudo_variants, args.seed, args.min_label_conf, not args.raw_labels,
                            not args.no_hand_labels, args.scene_variants)
    x_pv, y_pv = pseudo_set("valid", 0, args.seed)
    if args.two_row:
        x_tr, y_tr = two_row_set(args.seed, args.two_row, "train", args.workers)
        x_syn, y_syn = np.concatenate([x_syn, x_tr]), y_syn + y_tr
    parts = [("synthetic", x_syn, y_syn), ("pseudo_labelled_real_with_variants", x_pt, y_pt)]
    if not args.no_benchmark and args.real_variants >= 0:
        parts.append(("benchmark_train_real_with_variants",
                      *real_set(args.real_variants, args.seed, args.photo_weight)))
    if extra is not None:
        parts.append(("extra", extra[0], list(extra[1])))
    parts = [(name, px, list(py)) for name, px, py in parts if len(py)]
    return {"x": np.concatenate([px for _, px, _ in parts]), "y": [t for _, _, py in parts for t in py],
            "counts": {name: len(py) for name, _, py in parts},
            "x_sv": x_sv, "y_sv": y_sv, "x_pv": x_pv, "y_pv": y_pv}


def labels_array(texts: list[str]) -> np.ndarray:
    y = np.zeros((len(texts), MAX_LABEL), np.int32)
    for i, t in enumerate(texts):
        e = encode(t[:MAX_LABEL])
        y[i, :len(e)] = e
    return y


def build_model(width: float = 1.0, norm: bool = True):
    """The reader. `norm=False` builds it with biased convs and no batch norm: the form an int8
    export has after folding, into which `float_reader` loads a shipped model."""
    import keras
    from keras import layers

    def cbr(x, ch, k=3, pad="same"):
        x = layers.Conv2D(ch, k, padding=pad, use_bias=not norm)(x)
        if norm:
            x = layers.BatchNormalization()(x)
        return layers.ReLU()(x)

    c = lambda n: int(round(n * width / 8)) * 8
    inp = keras.Input((READER_H, READER_W, 1), name="plate")
    x = cbr(inp, c(16))
    x = layers.MaxPooling2D(2)(x)                     # 20 x 64
    x = cbr(x, c(32))
    x = layers.MaxPooling2D(2)(x)                     # 10 x 32
    x = cbr(x, c(64))
    x = cbr(x, c(64))
    x = layers.MaxPooling2D((2, 1))(x)                # 5 x 32
    x = cbr(x, c(96))
    x = cbr(x, c(128), k=(5, 1), pad="valid")         # 1 x 32: one column per time step
    for _ in range(2):                                # context along the plate
        y = cbr(x, c(128), k=(1, 3))
        x = layers.Add()([x, y])
    x = layers.Conv2D(NUM_CLASSES, 1)(x)
    out = layers.Reshape((READER_W // 4, NUM_CLASSES), name="logits")(x)
    return keras.Model(inp, out, name="plate_reader")


def float_reader(path: Path = ROOT / "models" / "reader.tflite"):
    """The shipped reader as a trainable Keras model (no batch norm)."""
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


def greedy_batch(logits: np.ndarray) -> list[str]:
    return [best_path(row) for row in logits]


def export_reader(model, rep: np.ndarray, path: Path) -> None:
    """Calibrated on 400 real training inputs."""
    idx = np.random.default_rng(0).permutation(len(rep))[:400]
    export_int8(model, lambda: (rep[i:i + 1, ..., None].astype(np.float32) / 255.0 for i in idx), path)


def tflite_eval(path: Path, x: np.ndarray, texts: list[str]) -> dict:
    from unit.litert import Model
    m = Model(path, threads=1)
    hits, ts = 0, []
    for i in range(len(x)):
        t = time.perf_counter()
        logits = m.run(x[i][None, ..., None].astype(np.float32) / 255.0)[0]
        ts.append((time.perf_counter() - t) * 1000)
        hits += greedy_batch(logits[None])[0] == texts[i]
    return {"exact": hits / max(1, len(x)), "n": len(x), "ms_median": float(np.median(ts))}


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=36000)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--pseudo-variants", type=int, default=12)
    ap.add_argument("--scene-variants", type=float, default=0.0, metavar="SHARE",
                    help="share of the real variants cut from the scene as the unit frames a detector box "
                         "(synth.detector_framing) instead of re-cut inside the saved crop")
    ap.add_argument("--frames", type=float, default=0.0, metavar="SHARE",
                    help="share of the synthetic US plates drawn inside a dealer's plate frame "
                         "(synth.plate_frame)")
    ap.add_argument("--synth-framing", type=float, default=0.0, metavar="SHARE",
                    help="share of the synthetic plates cropped as the unit frames a detector box "
                         "(synth.detector_framing) instead of by synth.jitter_box")
    ap.add_argument("--two-row", type=int, default=0, metavar="N",
                    help="N more synthetic two-row plates, laid side by side as the unit reads them (unit.rows)")
    ap.add_argument("--min-label-conf", type=float, default=0.0,
                    help="train only on pseudo-labels at or above this RapidOCR confidence (valid crops: all)")
    ap.add_argument("--raw-labels", action="store_true",
                    help="RapidOCR's labels as they are, without the corrections in label_fixes.csv "
                         "(how readers before 28 Nov were trained)")
    ap.add_argument("--no-hand-labels", action="store_true",
                    help="leave out the crops RapidOCR skipped that were read by eye (hand_labels.csv)")
    ap.add_argument("--real-variants", type=int, default=16, metavar="N",
                    help="augmented copies of each real plate of the benchmark folders' train split "
                         "(realplates.py), besides the plate itself: how much the real plates weigh")
    ap.add_argument("--photo-weight", type=float, default=1.0, metavar="W",
                    help="W times as many augmented copies for the plates cut from the benchmark's photos "
                         "as for its crops")
    ap.add_argument("--no-benchmark", action="store_true",
                    help="train without the benchmark folders (openalpr/benchmarks, AGPL-3.0): weights "
                         "free of that licence")
    ap.add_argument("--init", help="start from these Keras weights (fine-tuning)")
    ap.add_argument("--init-tflite", help="start from this int8 reader, dequantised (fine-tuning the shipped model; "
                                          "its width wins over --width)")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--soup", action="store_true",
                    help="export the average of the starting and the fine-tuned weights (needs --init or --init-tflite)")
    ap.add_argument("--end-too", metavar="DIR",
                    help="with --soup: also export the fine-tuned weights themselves (not averaged) to DIR, "
                         "a second candidate from the same run")
    ap.add_argument("--width", type=float, default=1.0, help="channel multiplier")
    ap.add_argument("--folded", action="store_true",
                    help="the net without batch norm, as a shipped file has it after folding (what "
                         "models.training.recover writes; needed to --init from its weights)")
    ap.add_argument("--workers", type=int, default=min(16, os.cpu_count() or 1),
                    help="processes rendering synthetic plates")
    ap.add_argument("--weights-only", action="store_true",
                    help="write the trained Keras weights and a training record to --out, no int8 export: "
                         "for a machine without TensorFlow (any Keras backend); export later with --export")
    ap.add_argument("--export", metavar="DIR",
                    help="no training: export DIR/reader.weights.npz (a --weights-only run) to int8 in --out")
    ap.add_argument("--out", default=str(ROOT / "models"))
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    if args.soup and not (args.init or args.init_tflite):
        ap.error("--soup averages with the starting weights: give --init or --init-tflite")
    if args.end_too and (not args.soup or args.weights_only):
        ap.error("--end-too exports the end of a --soup run beside its soup (not with --weights-only)")
    for name in ("scene_variants", "synth_framing", "frames"):
        if not 0.0 <= getattr(args, name) <= 1.0:
            ap.error(f"--{name.replace('_', '-')} is a share between 0 and 1, not {getattr(args, name)}")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.real_variants < 0:
        ap.error(f"--real-variants is a count of copies, 0 or more, not {args.real_variants}")
    if args.photo_weight < 0:
        ap.error(f"--photo-weight is a factor, 0 or more, not {args.photo_weight}")
    if args.export:
        return export_trained(Path(args.export), Path(args.out), args.seed)
    card = train(args)
    print(json.dumps(card, indent=2))
    return 0


def fine_tune(init_tflite: Path, out: Path, extra: tuple[np.ndarray, list[str]] | None = None,
              **options) -> dict:
    """Fine-tune an int8 reader (dequantised) and export the result to `out`/reader.tflite + reader.json;
    returns the card written. `extra`: more training inputs (uint8 [N, READER_H, READER_W], as
    `unit.preprocess.reader_input` gives) and their texts, added to the usual data. `options`: any of
    the command line's options by their Python name, with the command line's defaults (samples=36000,
    epochs=8, lr=2e-3, soup=False, real_variants=16: pass e.g. samples=16000, epochs=3, lr=5e-4,
    soup=True for the model card's recipe; no_benchmark=True for weights free of the AGPL-3.0
    benchmark folders)."""
    args = build_parser().parse_args(["--init-tflite", str(init_tflite), "--out", str(out)])
    for name, value in options.items():
        if not hasattr(args, name) or name in ("init_tflite", "out", "export"):
            raise TypeError(f"fine_tune: no option {name!r}")
        setattr(args, name, value)
    return train(args, extra)


def train(args: argparse.Namespace, extra: tuple[np.ndarray, list[str]] | None = None) -> dict:
    """One training run by the options `build_parser` defines; returns the card (or, with
    --weights-only, the training record)."""
    t0 = time.time()
    data = training_data(args, extra)
    x, y = data["x"], data["y"]
    x_sv, y_sv, x_pv, y_pv = data["x_sv"], data["y_sv"], data["x_pv"], data["y_pv"]
    print(f"data: {data['counts']}, synth-valid {len(x_sv)}, pseudo-valid {len(x_pv)} "
          f"({time.time() - t0:.0f}s)", file=sys.stderr, flush=True)
    import keras
    keras.utils.set_random_seed(args.seed)
    init_path = args.init_tflite or args.init
    # the starting file may be overwritten by this very run (models/reader.tflite): record which it was
    init_sha = hashlib.sha256(Path(init_path).read_bytes()).hexdigest() if init_path else None
    if args.init_tflite:
        model, args.width = float_reader(Path(args.init_tflite))
    else:
        model = build_model(args.width, norm=not args.folded)
    if args.init:
        model.load_weights(args.init)
    start = [w.copy() for w in model.get_weights()] if args.soup else None
    steps = args.epochs * (len(x) // args.batch)
    sched = keras.optimizers.schedules.CosineDecay(args.lr, steps, alpha=0.02,
                                                   warmup_target=None)
    model.compile(optimizer=keras.optimizers.Adam(sched), loss=keras.losses.CTC())
    xs = x[..., None].astype(np.float32) / 255.0
    ys = labels_array(y)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    record = {"model": "reader", "params": int(model.count_params()),
              "input": [READER_H, READER_W, 1], "classes": "blank + " + ALPHABET, "seed": args.seed,
              "samples": data["counts"], "real_variants": 0 if args.no_benchmark else args.real_variants,
              "benchmark": not args.no_benchmark, "photo_weight": args.photo_weight,
              "epochs": args.epochs, "batch": args.batch, "width": args.width, "folded": args.folded,
              "init": init_path, "init_sha256": init_sha, "lr": args.lr, "soup": args.soup,
              "min_label_conf": args.min_label_conf, "label_fixes": not args.raw_labels,
              "hand_labels": not (args.raw_labels or args.no_hand_labels), "scene_variants": args.scene_variants,
              "synth_framing": args.synth_framing, "frames": args.frames, "two_row": args.two_row,
              "machine": machine(),
              "keras_backend": keras.backend.backend()}
    t1 = time.time()

    class Report(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            pv = greedy_batch(self.model.predict(x_sv[..., None] / 255.0, verbose=0, batch_size=256))
            acc = np.mean([a == b for a, b in zip(pv, y_sv)])
            msg = f"epoch {epoch + 1}: loss {logs['loss']:.3f} synth-valid exact {acc:.3f}"
            if len(x_pv):
                pp = greedy_batch(self.model.predict(x_pv[..., None] / 255.0, verbose=0, batch_size=256))
                msg += f" pseudo-valid exact {np.mean([a == b for a, b in zip(pp, y_pv)]):.3f}"
            print(msg + f" ({time.time() - t1:.0f}s)", file=sys.stderr, flush=True)
            if args.weights_only:
                # a run cut short (a lent machine's time limit) still leaves its last epoch behind
                save_weights_only(self.model, out, {**record, "epochs_done": epoch + 1, "soup": False,
                                                    "train_seconds": round(time.time() - t1)})
            else:
                CACHE.mkdir(exist_ok=True)
                self.model.save_weights(str(CACHE / f"reader-w{args.width:g}.weights.h5"))

    model.fit(xs, ys, batch_size=args.batch, epochs=args.epochs, shuffle=True, verbose=0, callbacks=[Report()])
    train_s = time.time() - t1
    record.update(train_seconds=round(train_s), epochs_done=args.epochs)
    if start is not None and getattr(args, "end_too", None):
        end_dir = Path(args.end_too)
        end_dir.mkdir(parents=True, exist_ok=True)
        finish_card(model, x, {**record, "soup": False}, end_dir, x_sv, y_sv, x_pv, y_pv)
    if start is not None:
        # a "model soup" of two points on one fine-tuning path: on the valid crops and photos it read
        # better than either end (models/README.md)
        model.set_weights([(a + b) / 2 for a, b in zip(start, model.get_weights())])
    if args.weights_only:
        save_weights_only(model, out, record)
        return record
    return finish_card(model, x, record, out, x_sv, y_sv, x_pv, y_pv)


def save_plain_weights(model, out: Path) -> None:
    """The layers' weights alone, in `get_weights()` order (a Keras weights file would also carry the
    optimiser's state, three times the size)."""
    np.savez(out / "reader.weights.npz", *model.get_weights())


def save_weights_only(model, out: Path, record: dict) -> None:
    """What `--export` reads back: the weights and the record of how they were trained."""
    save_plain_weights(model, out)
    (out / "reader-train.json").write_text(json.dumps(record, indent=2) + "\n")


def load_plain_weights(model, path: Path) -> None:
    z = np.load(path)
    model.set_weights([z[f"arr_{i}"] for i in range(len(z.files))])


def machine() -> str:
    """Where training ran, for the model card: CPU cores and any GPU the backend saw."""
    desc = f"{os.cpu_count()} CPU cores"
    try:
        import keras
        if keras.backend.backend() == "jax":
            import jax
            gpus = [d.device_kind for d in jax.devices() if d.platform == "gpu"]
            if gpus:
                desc += ", " + ", ".join(gpus)
    except Exception:   # the record is descriptive only
        pass
    return desc


def finish_card(model, x_rep: np.ndarray, record: dict, out: Path, x_sv, y_sv, x_pv, y_pv) -> dict:
    tfl = out / "reader.tflite"
    export_reader(model, x_rep, tfl)
    card = {**record, "file": tfl.name, "bytes": tfl.stat().st_size, "int8_synth_valid": tflite_eval(tfl, x_sv, y_sv)}
    if len(x_pv):
        card["int8_pseudo_valid"] = tflite_eval(tfl, x_pv, y_pv)
    (out / "reader.json").write_text(json.dumps(card, indent=2) + "\n")
    return card


def export_trained(src: Path, out: Path, seed: int) -> int:
    """Int8 export of a --weights-only run (trained elsewhere, e.g. on a GPU machine without TensorFlow),
    calibrated and checked the way a full run is."""
    record = json.loads((src / "reader-train.json").read_text())
    model = build_model(record["width"], norm=not record.get("folded", False))
    load_plain_weights(model, src / "reader.weights.npz")
    x_rep, _ = pseudo_set("train", 12, seed)
    if not len(x_rep):
        x_rep, _ = synth_set(seed, 2000, "train")
    x_sv, y_sv = synth_set(record["seed"] + 1000, 2000, "valid")
    x_pv, y_pv = pseudo_set("valid", 0, seed)
    out.mkdir(parents=True, exist_ok=True)
    card = finish_card(model, x_rep, {**record, "exported_from": str(src)}, out, x_sv, y_sv, x_pv, y_pv)
    print(json.dumps(card, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
