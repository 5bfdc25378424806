"""A thin wrapper over the LiteRT interpreter: load a .tflite, quantise in, dequantise out.

LiteRT (`ai-edge-litert`) is the runtime of choice; `tflite_runtime` is the fallback for images that
still ship it. Nothing here imports TensorFlow.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import tempfile
import threading
from pathlib import Path
from typing import Iterator

import numpy as np


class ModelError(RuntimeError):
    """A model file is missing, unreadable or not what the recogniser expects."""


BANNER = b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
_stderr_lock = threading.Lock()


@contextlib.contextmanager
def _without_banner() -> Iterator[None]:
    """LiteRT's C++ logger prints an INFO banner on stderr for every interpreter, and no setting turns
    it off. For the moment an interpreter is made, file descriptor 2 goes to a temporary file; then
    everything written there, the banner apart, is written to the real stderr (nothing else is lost,
    only held back for those milliseconds)."""
    with _stderr_lock, tempfile.TemporaryFile() as held:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            rest = b"".join(line for line in held if not line.startswith(BANNER))
            if rest:
                os.write(2, rest)


def _interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # pragma: no cover - depends on the device image
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError as exc:
            raise ModelError("no TFLite runtime: install ai-edge-litert (or tflite-runtime)") from exc
    return Interpreter


class Model:
    """One loaded model with a single input and a single output, run at batch 1."""

    def __init__(self, path: str | Path, threads: int = 1):
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelError(f"model file not found: {self.path}")
        data = self.path.read_bytes()
        self.sha256 = hashlib.sha256(data).hexdigest()
        try:
            with _without_banner():
                self._it = _interpreter_class()(model_content=data, num_threads=max(1, int(threads)))
                self._it.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"model file {self.path} cannot be loaded: {exc}") from None
        ins, outs = self._it.get_input_details(), self._it.get_output_details()
        if len(ins) != 1 or len(outs) != 1:
            raise ModelError(f"model {self.path} must have one input and one output")
        self._in, self._out = ins[0], outs[0]
        self.input_shape = tuple(int(v) for v in self._in["shape"])

    def run(self, x: np.ndarray) -> np.ndarray:
        """x: float32 in the model's float domain, shaped like the input; returns float32 output."""
        d = self._in
        if d["dtype"] in (np.int8, np.uint8):
            scale, zero = d["quantization"]
            info = np.iinfo(d["dtype"])
            q = np.clip(np.round(x / scale + zero), info.min, info.max).astype(d["dtype"])
        else:
            q = x.astype(d["dtype"])
        self._it.set_tensor(d["index"], q.reshape(self.input_shape))
        self._it.invoke()
        o = self._out
        y = self._it.get_tensor(o["index"])
        if o["dtype"] in (np.int8, np.uint8):
            scale, zero = o["quantization"]
            y = (y.astype(np.float32) - zero) * scale
        return y.astype(np.float32)
