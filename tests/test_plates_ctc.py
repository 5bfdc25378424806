"""Plate-format re-ranking and CTC decoding: pure functions, checked on hand-made inputs."""
import math

import numpy as np

from unit import ctc, plates


def test_normalise_drops_everything_but_letters_and_digits():
    assert plates.normalise(" 7abc-23 4.") == "7ABC234"


def test_rerank_prefers_a_known_layout_but_never_changes_text():
    cands = [("7ABC2341", 0.40), ("7ABC234", 0.35), ("7AB", 0.25)]
    out = plates.rerank(cands)
    assert [t for t, _ in out][0] == "7ABC234"
    assert sorted(t for t, _ in out) == sorted(t for t, _ in cands)     # nothing invented or dropped
    assert math.isclose(sum(s for _, s in out), 1.0, rel_tol=1e-6)


def test_rerank_keeps_a_clear_unusual_read():
    out = plates.rerank([("QQ1Z9", 0.9), ("7ABC234", 0.1)])
    assert out[0][0] == "QQ1Z9"


def test_region_guess():
    assert plates.region_of("7ABC234") == "us-ca"
    assert plates.region_of("ABC1D23") == "br"
    assert plates.region_of("Z") == ""


def _logp_for(path: list[int], sharp: float = 8.0) -> np.ndarray:
    logits = np.zeros((len(path), ctc.NUM_CLASSES), np.float32)
    for t, k in enumerate(path):
        logits[t, k] = sharp
    return ctc.log_softmax(logits)


def test_best_path_merges_repeats_and_drops_blanks():
    a, b = ctc.encode("A")[0], ctc.encode("B")[0]
    assert ctc.best_path(_logp_for([0, a, a, 0, a, b, b, 0])) == "AAB"


def test_beam_finds_the_label_and_ranks_alternatives():
    seven, one = ctc.encode("7")[0], ctc.encode("1")[0]
    logits = np.full((6, ctc.NUM_CLASSES), -5.0, np.float32)
    logits[:, 0] = 2.0
    logits[1, seven] = 6.0
    logits[3, seven] = 3.0
    logits[3, one] = 2.5          # an uncertain second character
    out = ctc.beam(ctc.log_softmax(logits), width=8, top_n=3)
    texts = [t for t, _ in out]
    assert texts[0] == "77"
    assert "71" in texts
    assert out[0][1] >= out[1][1]
