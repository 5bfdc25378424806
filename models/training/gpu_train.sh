#!/bin/bash
# Train readers on a machine with a GPU and JAX but no TensorFlow, from a bundle made here by
# `python -m models.training.bundle` (scenes, crops, fonts, the shipped reader's weights), in the repo root:
#
#   OUT=/some/dir [WHEELS=.whl] [N=100000] [E=8] [SEED=5] [BUNDLE_TAR=cache/gpu/bundle.tar.gz] bash models/training/gpu_train.sh
#
# BUNDLE_TAR: the bundle as one gzipped tar file (bundle.py writes cache/gpu/bundle.tar.gz): the lent
# machine's 64 MiB limit counts each small file's overhead, and the bundle has thousands.
#
# WHEELS: Keras and what it needs beyond the machine's own packages, installed into /tmp/site; for a
# Python 3.12 x86-64 machine, fetched here with
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 -d .whl keras==3.15.1 namex==0.1.0 optree==0.20.0
# It renders N synthetic plates on all cores, then trains four readers side by side on the one GPU,
# each writing OUT/NAME/reader.weights.npz and
# reader-train.json after every epoch:
#   a  width 1.5 from scratch, E epochs      b  width 2 from scratch, E epochs
#   c  the shipped reader fine-tuned, 3 epochs at 5e-4, soup      d  width 2.5 from scratch, E epochs
# Back on a machine with TensorFlow: `python -m models.training.train_reader --export OUT/NAME --out DIR`
# gives DIR/reader.tflite, and `alpr-unit eval` on the valid folders chooses between them.
# The fonts are copied to the paths synth.py expects, so run it on a scratch machine as root.
set -u
T0=$(date +%s)
t() { echo "[$(( $(date +%s) - T0 ))s] $*"; }
BUNDLE=${BUNDLE:-cache/bundle}
if [ -n "${BUNDLE_TAR:-}" ]; then
  # one tar file travels smaller than thousands of small files
  mkdir -p /tmp/bundle-x && tar -xf "$BUNDLE_TAR" -C /tmp/bundle-x || exit 3
  BUNDLE=/tmp/bundle-x/bundle
fi
: "${OUT:?set OUT to the folder for the trained weights}"
if [ -n "${WHEELS:-}" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$WHEELS"/*.whl || exit 3
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
case $BUNDLE in /*) ;; *) BUNDLE=$PWD/$BUNDLE ;; esac
export ALPR_SHARED=$BUNDLE/shared KERAS_BACKEND=${KERAS_BACKEND:-jax} XLA_PYTHON_CLIENT_PREALLOCATE=false \
  PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2
cp -r "$BUNDLE"/fonts/. / || exit 3
mkdir -p cache && cp -r "$BUNDLE"/cache/. cache/ || exit 3
t "cores $(nproc)"; nvidia-smi -L 2>/dev/null
python3 - <<'PY' || exit 4
import keras, numpy as np
print("keras", keras.__version__, "backend", keras.backend.backend())
from models.training.train_reader import build_model, labels_array, machine
from models.training.synth import available_fonts, FONT_FILES
from models.training.datasets import scenes
print(machine(), "fonts", len(available_fonts(FONT_FILES)), "scenes", len(scenes("train")))
m = build_model(1.5); m.compile(optimizer="adam", loss=keras.losses.CTC())
m.fit(np.random.rand(128, 40, 128, 1).astype("float32"), labels_array(["ABC123"] * 128), batch_size=64, verbose=0)
print("one training step: ok")
PY
t "checked"
N=${N:-100000}; E=${E:-8}; SEED=${SEED:-5}
W=$(( $(nproc) > 2 ? $(nproc) - 1 : 1 ))
python3 -c "from models.training.train_reader import pseudo_set; print('pseudo', len(pseudo_set('train', 12, $SEED)[0]), len(pseudo_set('valid', 0, $SEED)[0]))" &
python3 -c "from models.training.train_reader import synth_set; synth_set($SEED, $N, 'train', workers=$W)" 2>&1 | awk 'NR % 10 == 0'
wait
t "data ready"
# the bundle does not carry the benchmark folders (AGPL-3.0, models/README.md): these readers train without them
run() { name=$1; shift; python3 -m models.training.train_reader --seed "$SEED" --samples "$N" --weights-only --batch 128 \
  --no-benchmark --workers 1 --out "$OUT/$name" "$@" 2>&1 | grep -v '^ *synth\|^  ' | sed "s/^/$name: /"; }
run a --width 1.5 --epochs "$E" &
run b --width 2 --epochs "$E" &
run c --width 1.5 --folded --init cache/reader-shipped.weights.h5 --epochs 3 --lr 5e-4 --soup &
run d --width 2.5 --epochs "$E" &
wait
t "done"; ls -l "$OUT"/*
