"""Decoding the reader's per-column character scores (CTC, blank = class 0) into plate candidates."""
from __future__ import annotations

import math

import numpy as np

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
BLANK = 0
NUM_CLASSES = len(ALPHABET) + 1


def encode(text: str) -> list[int]:
    return [ALPHABET.index(c) + 1 for c in text]


def log_softmax(logits: np.ndarray) -> np.ndarray:
    m = logits.max(axis=-1, keepdims=True)
    z = logits - m
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def best_path(scores: np.ndarray) -> str:
    """The most likely class per column (logits or log-probabilities), repeats merged, blanks dropped."""
    out, prev = [], BLANK
    for k in scores.argmax(axis=-1):
        if k != prev and k != BLANK:
            out.append(ALPHABET[k - 1])
        prev = k
    return "".join(out)


NEG_INF = -math.inf


def _logaddexp(a: float, b: float) -> float:
    if a == NEG_INF:
        return b
    if b == NEG_INF:
        return a
    return max(a, b) + math.log1p(math.exp(-abs(a - b)))


def beam(logp: np.ndarray, width: int = 8, top_n: int = 5) -> list[tuple[str, float]]:
    """CTC prefix beam search; returns up to top_n (text, probability), best first.

    Probabilities are of the whole label summed over its alignments, so candidates are comparable
    with each other and usable as a confidence.
    """
    # prefix -> (log p ending in blank, log p ending in non-blank); plain Python floats throughout:
    # numpy's scalar calls cost more than the arithmetic at this size
    beams: dict[str, tuple[float, float]] = {"": (0.0, NEG_INF)}
    for row in logp.tolist():
        # only consider classes with non-negligible mass per column (speed)
        cand = [k for k, v in enumerate(row) if v > -8.0]
        nxt: dict[str, list[float]] = {}

        def add(prefix: str, pb: float, pnb: float) -> None:
            cur = nxt.get(prefix)
            if cur is None:
                nxt[prefix] = [pb, pnb]
            else:
                cur[0] = _logaddexp(cur[0], pb)
                cur[1] = _logaddexp(cur[1], pnb)

        for prefix, (pb, pnb) in beams.items():
            total = _logaddexp(pb, pnb)
            last = prefix[-1] if prefix else ""
            for k in cand:
                p = row[k]
                if k == BLANK:
                    add(prefix, total + p, NEG_INF)
                    continue
                ch = ALPHABET[k - 1]
                if ch == last:
                    add(prefix, NEG_INF, pnb + p)            # repeat collapses
                    add(prefix + ch, NEG_INF, pb + p)        # blank in between: a real double
                else:
                    add(prefix + ch, NEG_INF, total + p)
        scored = sorted(nxt.items(), key=lambda kv: -_logaddexp(kv[1][0], kv[1][1]))[:width]
        beams = {k: (v[0], v[1]) for k, v in scored}
    final = sorted(((k, _logaddexp(*v)) for k, v in beams.items() if k), key=lambda kv: -kv[1])
    return [(k, math.exp(lp)) for k, lp in final[:top_n]]
