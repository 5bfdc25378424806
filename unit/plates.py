"""Plate text: normalisation and plate-format knowledge.

Formats only re-rank what the reader already proposed; they never add, drop or change a character.
A candidate that fits a known layout gets a modest boost over one that fits none, so "7ABC234" beats
"7ABC2341" when the reader is torn between them, but a clear read of an unusual plate still wins.
"""
from __future__ import annotations

import re

# region, pattern, weight (L letter, D digit, X either)
FORMATS: list[tuple[str, str, float]] = [
    ("us-ca", "DLLLDDD", 2.0),     # California since 1980
    ("us-ca", "DLLDDDD", 1.2),     # California commercial
    ("us-ca", "DDLLLDD", 1.0),     # older commercial, trailers
    ("us-ca", "DDDDDLD", 1.0),     # California trailer / exempt style
    ("us", "LLLDDDD", 1.8),
    ("us", "LLLDDD", 1.8),
    ("us", "DDDLLL", 1.5),
    ("us", "LLDDDDD", 1.2),
    ("us", "DDDDDD", 1.0),
    ("us", "DLLDDD", 1.0),
    ("us", "LLLLDDD", 1.0),
    ("us", "DDDLLLL", 1.0),
    ("us", "LLDDLLL", 1.0),        # also UK
    ("mx", "LLLDDDD", 1.2),        # Baja California and other Mexican border plates
    ("mx", "LLDDDDL", 1.0),
    ("eu", "LLDDDLL", 1.2),        # FR / IT
    ("eu", "LLLDDD", 1.0),
    ("br", "LLLDLDD", 1.5),        # Mercosul
    ("br", "LLLDDDD", 1.2),
]
MATCH_BOOST = 1.6
SHORT_PENALTY = 0.35   # 1-3 characters: almost always a partial read

_NON_PLATE = re.compile(r"[^A-Z0-9]")


def normalise(text: str) -> str:
    """Upper-case letters and digits only: spaces, dashes, dots and the rest dropped."""
    return _NON_PLATE.sub("", text.upper())


def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile("^" + pattern.replace("L", "[A-Z]").replace("D", "[0-9]").replace("X", "[A-Z0-9]") + "$")


_COMPILED = [(region, _regex(p), w) for region, p, w in FORMATS]


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance; plates are short, so the plain DP is plenty."""
    if a == b:
        return 0
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def region_of(text: str) -> str:
    """Best-guess region from the layout alone ('' when nothing fits)."""
    best, weight = "", 0.0
    for region, rx, w in _COMPILED:
        if rx.match(text) and w > weight:
            best, weight = region, w
    return best


def format_prior(text: str) -> float:
    if len(text) <= 3:
        return SHORT_PENALTY
    for _, rx, _ in _COMPILED:
        if rx.match(text):
            return MATCH_BOOST
    return 1.0 if len(text) <= 8 else 0.5


def rerank(candidates: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """Re-order reader candidates by probability x format prior; scores renormalised to sum <= 1."""
    if not candidates:
        return []
    total = sum(p for _, p in candidates)
    scored = [(t, p * format_prior(t)) for t, p in candidates]
    z = sum(s for _, s in scored) or 1.0
    return sorted(((t, s / z * total) for t, s in scored), key=lambda kv: -kv[1])
