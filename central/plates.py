"""Plate patterns for search and hot lists (policy 462.3(c): partial plates).

`?` stands for exactly one character and `*` for any run (none included), as on the unit. In SQL
they become LIKE's `_` and `%`, with LIKE's own metacharacters escaped first (a plate is A-Z0-9, so
there are none after validation, but the escaping makes the translation safe on its own).
On PostgreSQL, LIKE on `reads.plate` uses the pg_trgm GIN index; SQLite scans.
"""
from __future__ import annotations

import re

PATTERN_RE = re.compile(r"^[A-Z0-9?*]{1,12}$")
ESCAPE = "\\"


def normalise(text: str) -> str:
    """Upper-case and trim; anything else that is not A-Z0-9?* is refused, not guessed at."""
    return (text or "").strip().upper()


def is_partial(pattern: str) -> bool:
    return "?" in pattern or "*" in pattern


def check(pattern: str, min_literals: int) -> str:
    """Validate and return the normalised pattern; ValueError says what is wrong."""
    pattern = normalise(pattern)
    if not PATTERN_RE.match(pattern):
        raise ValueError(f"plate {pattern!r}: 1-12 of A-Z, 0-9, '?' (one character) and '*' (any run)")
    literals = sum(c.isalnum() for c in pattern)
    if literals < min_literals:
        raise ValueError(f"plate {pattern!r}: give at least {min_literals} known characters")
    if not is_partial(pattern) and len(pattern) > 10:
        raise ValueError(f"plate {pattern!r}: a plate has at most 10 characters")
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
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern))
