"""One read per vehicle: vote the frames of a burst, then suppress repeats within a window.

Per-frame OCR is noisy (a blurred 8 read as B in one frame, right in the next), so the burst's reads are
voted character by character, weighted by each frame's confidence. Reads of a different plate in the same
burst (a second vehicle in view) form their own cluster; the heaviest cluster wins. A vehicle that
triggers twice (stop-and-go on a loop) gives the same plate again: `Deduper` keeps it to one read.

`Thresholds` and `decide()` are the unit's recognition thresholds applied to a burst: the recognition
stage (`unit.pipeline`) and the threshold sweep (`hil.sweep`, which replays recorded frame reads at many
settings) both go through them, so a swept setting means what it means on a unit.
"""
from __future__ import annotations

import collections
from dataclasses import dataclass, field

from unit.plates import edit_distance
from unit.recognise import Candidate, PlateRead


edits = edit_distance   # the name the voting code and its tests use


@dataclass
class Vote:
    plate: str
    confidence: float                     # 0..1: frame confidence times agreement
    candidates: list[Candidate]           # top-N, voted plate first
    best: PlateRead                       # the frame read whose crop and box go with the read
    best_index: int                       # index of `best` in the list given to vote()
    support: int                          # frame reads that agree exactly with the voted plate
    frames: int                           # frame reads in the winning cluster
    region: str = ""
    others: list[str] = field(default_factory=list)   # other plates seen in the burst (other clusters)


def _cluster(reads: list[PlateRead]) -> list[list[int]]:
    """Greedy clustering by text similarity, heaviest anchors first."""
    order = sorted(range(len(reads)), key=lambda i: -reads[i].confidence)
    clusters: list[list[int]] = []
    for i in order:
        text = reads[i].text
        for cl in clusters:
            anchor = reads[cl[0]].text
            if edits(text, anchor) <= max(1, len(anchor) // 3):
                cl.append(i)
                break
        else:
            clusters.append([i])
    return clusters


def vote(reads: list[PlateRead], top_n: int = 5, min_chars: int = 2) -> Vote | None:
    """Vote the frame reads of one burst into one plate; None when nothing readable was seen."""
    usable = [i for i, r in enumerate(reads) if len(r.text) >= min_chars and r.confidence > 0]
    if not usable:
        return None
    sub = [reads[i] for i in usable]
    clusters = _cluster(sub)
    weight = [sum(sub[i].confidence for i in cl) for cl in clusters]
    win = max(range(len(clusters)), key=lambda k: weight[k])
    cluster = clusters[win]

    by_len: dict[int, float] = collections.defaultdict(float)
    for i in cluster:
        by_len[len(sub[i].text)] += sub[i].confidence
    length = max(by_len, key=lambda n: (by_len[n], n))
    same_len = [i for i in cluster if len(sub[i].text) == length]

    chars, agreement = [], []
    for pos in range(length):
        w: dict[str, float] = collections.defaultdict(float)
        for i in same_len:
            w[sub[i].text[pos]] += sub[i].confidence
        ch = max(w, key=lambda c: (w[c], c))
        chars.append(ch)
        agreement.append(w[ch] / sum(w.values()))
    plate = "".join(chars)

    mean_conf = sum(sub[i].confidence for i in same_len) / len(same_len)
    confidence = max(0.0, min(1.0, mean_conf * min(agreement) * by_len[length] / weight[win]))

    exact = [i for i in cluster if sub[i].text == plate]
    pool = exact or same_len
    best_local = max(pool, key=lambda i: (sub[i].confidence, sub[i].det_score))

    scores: dict[str, float] = collections.defaultdict(float)
    for i in cluster:
        cands = sub[i].candidates or [Candidate(sub[i].text, sub[i].confidence)]
        for c in cands:
            scores[c.plate] += c.score / len(cluster)
    others = sorted((p for p in scores if p != plate), key=lambda p: -scores[p])[: max(0, top_n - 1)]
    candidates = [Candidate(plate, round(confidence, 4))] + [Candidate(p, round(min(1.0, scores[p]), 4)) for p in others]

    regions: dict[str, float] = collections.defaultdict(float)
    for i in cluster:
        regions[sub[i].region] += sub[i].confidence
    return Vote(plate=plate, confidence=confidence, candidates=candidates, best=sub[best_local],
                best_index=usable[best_local], support=len(exact), frames=len(cluster),
                region=max(regions, key=lambda r: regions[r]),
                others=[sub[cl[0]].text for k, cl in enumerate(clusters) if k != win])


@dataclass(frozen=True)
class Thresholds:
    """The `[recognition]` keys that decide what a burst's frame reads become (`unit.config`)."""
    min_det_score: float = 0.0
    min_frame_confidence: float = 0.0
    min_read_confidence: float = 0.0
    min_chars: int = 2
    top_n: int = 5
    low_confidence_reads: bool = False

    @classmethod
    def of(cls, rc: object) -> "Thresholds":
        """From a `RecognitionConfig` (or anything with the same attributes)."""
        return cls(**{k: getattr(rc, k) for k in cls.__dataclass_fields__})


def frame_votes(read: PlateRead, th: Thresholds) -> bool:
    """Whether one frame's read of one plate box may vote: its box and its reading confident enough."""
    return read.det_score >= th.min_det_score and read.confidence >= th.min_frame_confidence


# what decide() made of a burst
READ, LOW_CONFIDENCE_READ, BELOW_THRESHOLD, NO_PLATE = "read", "low_confidence_read", "below_threshold", "no_plate"


def decide(reads: list[PlateRead], th: Thresholds) -> tuple[Vote | None, str]:
    """A burst's voting reads (those `frame_votes` let through) -> (vote, outcome): READ when the vote
    reaches `min_read_confidence`; below it, LOW_CONFIDENCE_READ when `low_confidence_reads` is on (the
    plate was found and read, not confidently: stored marked as such, candidates and all) and
    BELOW_THRESHOLD (nothing stored) when it is off; NO_PLATE (vote None) when nothing readable was seen."""
    v = vote(reads, top_n=th.top_n, min_chars=th.min_chars)
    if v is None:
        return None, NO_PLATE
    if v.confidence >= th.min_read_confidence:
        return v, READ
    return v, LOW_CONFIDENCE_READ if th.low_confidence_reads else BELOW_THRESHOLD


class Deduper:
    """Same plate, same lane, within `window_s`: the same vehicle. Holds plates in memory only."""

    def __init__(self, window_s: float = 10.0, max_edits: int = 1):
        self.window_s, self.max_edits = window_s, max_edits
        self._seen: dict[str, list[tuple[str, float]]] = collections.defaultdict(list)

    def seen(self, lane: str, plate: str, t: float) -> bool:
        """True if this is a repeat; otherwise remember it and return False."""
        recent = [(p, ts) for p, ts in self._seen[lane] if t - ts <= self.window_s]
        repeat = any(edits(plate, p) <= self.max_edits for p, _ in recent)
        if repeat:
            # keep the window sliding while the vehicle is still there (stop-and-go)
            recent = [(p, t if edits(plate, p) <= self.max_edits else ts) for p, ts in recent]
        else:
            recent.append((plate, t))
        self._seen[lane] = recent
        return repeat
