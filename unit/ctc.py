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


def greedy(logp: np.ndarray) -> tuple[str, float]:
    """Best path and the probability of that one alignment."""
    return best_path(logp), float(math.exp(logp.max(axis=-1).sum()))


def beam(logp: np.ndarray, width: int = 8, top_n: int = 5) -> list[tuple[str, float]]:
    """CTC prefix beam search; returns up to top_n (text, probability), best first.

    Probabilities are of the whole label summed over its alignments, so candidates are comparable
    with each other and usable as a confidence.
    """
    T, C = logp.shape
    # prefix -> (log p ending in blank, log p ending in non-blank)
    beams: dict[str, tuple[float, float]] = {"": (0.0, -math.inf)}
    # only consider classes with non-negligible mass per column (speed)
    for t in range(T):
        row = logp[t]
        cand = np.where(row > -8.0)[0]
        nxt: dict[str, list[float]] = {}

        def add(prefix: str, pb: float, pnb: float) -> None:
            cur = nxt.get(prefix)
            if cur is None:
                nxt[prefix] = [pb, pnb]
            else:
                cur[0] = np.logaddexp(cur[0], pb)
                cur[1] = np.logaddexp(cur[1], pnb)

        for prefix, (pb, pnb) in beams.items():
            total = np.logaddexp(pb, pnb)
            for k in cand:
                p = row[k]
                if k == BLANK:
                    add(prefix, total + p, -math.inf)
                    continue
                ch = ALPHABET[k - 1]
                if prefix and prefix[-1] == ch:
                    add(prefix, -math.inf, pnb + p)          # repeat collapses
                    add(prefix + ch, -math.inf, pb + p)      # blank in between: a real double
                else:
                    add(prefix + ch, -math.inf, total + p)
        scored = sorted(nxt.items(), key=lambda kv: -np.logaddexp(kv[1][0], kv[1][1]))[:width]
        beams = {k: (v[0], v[1]) for k, v in scored}
    final = sorted(((k, float(np.logaddexp(*v))) for k, v in beams.items() if k), key=lambda kv: -kv[1])
    return [(k, math.exp(lp)) for k, lp in final[:top_n]]
