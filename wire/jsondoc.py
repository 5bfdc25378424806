"""JSON from the network, refused when nested deeper than any document of the contract needs.

`json.loads` recurses once per level, so `[` repeated 50,000 times ends in a RecursionError (a 500 and
a traceback) after building a thousand nested lists. `loads` measures the nesting first, in C-speed
passes over the bytes (strings removed, brackets kept, then innermost pairs removed once per level),
and raises `JsonTooDeep` (a ValueError) before anything is built. Every body the store parses comes
through here.
"""
from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 32                         # a read envelope inside a batch is 4 deep; a heartbeat about 4

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_OTHER = bytes(b for b in range(256) if b not in b"[]{}")
_PAIRS = bytes.maketrans(b"[]{}", b"()()")


class JsonTooDeep(ValueError):
    """The document nests arrays and objects deeper than allowed."""


def check_depth(data: bytes | str, max_depth: int = MAX_DEPTH) -> None:
    """Raise JsonTooDeep if arrays and objects in `data` nest deeper than `max_depth` (brackets inside
    strings do not count), or ValueError if its brackets do not pair up (it is not JSON then)."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    brackets = _STRING.sub(b"", raw).translate(_PAIRS, _OTHER)
    for _level in range(max_depth):
        if not brackets:
            return
        inner = brackets.replace(b"()", b"")
        if len(inner) == len(brackets):
            break
        brackets = inner
    if b"()" in brackets or brackets.count(b"(") > max_depth:
        raise JsonTooDeep(f"JSON nested deeper than {max_depth} levels")
    if brackets:
        raise ValueError("not JSON: its brackets do not pair up")


def loads(data: bytes | str, max_depth: int = MAX_DEPTH) -> Any:
    """`json.loads`, refusing a document nested deeper than `max_depth` before it is parsed."""
    check_depth(data, max_depth)
    return json.loads(data)
