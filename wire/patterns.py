"""Plate patterns, the language of hot lists and searches (policy 462.3(c): partial plates).

A pattern is 1-12 of A-Z, 0-9, `?` (exactly one character) and `*` (any run, none included); one
without wildcards is a whole plate. The central store checks what people enter and matches ingested
reads; a unit matches passing plates against the list the store sends down. Both use `check` and
`to_regex` from here, so a pattern means the same on either side.

In SQL `?` and `*` become LIKE's `_` and `%`, with LIKE's own metacharacters escaped first (a checked
pattern has none, but the escaping makes the translation safe on its own).
"""
from __future__ import annotations

import re

from wire.read import PLATE_MAX

PATTERN_MAX = 12
PATTERN_RE = re.compile(rf"^[A-Z0-9?*]{{1,{PATTERN_MAX}}}$")
ESCAPE = "\\"


def normalise(text: str) -> str:
    """Upper-case and trim; anything else that is not A-Z0-9?* is refused, not guessed at."""
    return (text or "").strip().upper()


def is_partial(pattern: str) -> bool:
    return "?" in pattern or "*" in pattern


def check(pattern: str, min_literals: int = 1) -> str:
    """Validate and return the normalised pattern (runs of `*` made one); ValueError says what is wrong."""
    pattern = normalise(pattern)
    if not PATTERN_RE.match(pattern):
        raise ValueError(f"plate {pattern!r}: 1-{PATTERN_MAX} of A-Z, 0-9, '?' (one character) and '*' (any run)")
    literals = sum(c.isalnum() for c in pattern)
    if literals < min_literals:
        raise ValueError(f"plate {pattern!r}: give at least {min_literals} known characters")
    if not is_partial(pattern) and len(pattern) > PLATE_MAX:
        raise ValueError(f"plate {pattern!r}: a plate has at most {PLATE_MAX} characters")
    return re.sub(r"\*+", "*", pattern)


def to_like(pattern: str) -> str:
    out = []
    for c in pattern:
        if c in ("%", "_", ESCAPE):
            out.append(ESCAPE + c)
        elif c == "?":
            out.append("_")
        elif c == "*":
            out.append("%")
        else:
            out.append(c)
    return "".join(out)


def to_regex(pattern: str) -> re.Pattern:
    """A regex that `fullmatch`es the plates the pattern stands for."""
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern))
