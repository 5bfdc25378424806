"""The on-device hot list: plates (or partial plates, policy 462.3(c)) to alert on as they pass.

The central store is the authority and sends lists down; the unit only matches. File format: one
entry a line, `PATTERN[,LABEL]`, `#` starts a comment; PATTERN is a `wire.patterns` pattern (`*` any
run of characters, `?` one), in which spaces, dashes and dots are dropped. A match is an unverified
alert (policy 462.3(f)): it is logged by label and read_id, never by plate.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from wire import patterns

_SEPARATORS = re.compile(r"[\s\-.]")


@dataclass(frozen=True)
class Entry:
    pattern: str
    label: str
    regex: re.Pattern


class HotList:
    def __init__(self, entries: list[Entry] | None = None, source: str = ""):
        self.entries = entries or []
        self.source = source

    def __len__(self) -> int:
        return len(self.entries)

    def match(self, plate: str) -> Entry | None:
        for e in self.entries:
            if e.regex.fullmatch(plate):
                return e
        return None


def parse(text: str, source: str = "") -> HotList:
    """Parse a hot list; a bad line raises ValueError naming the line."""
    entries = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        pattern, _, label = (part.strip() for part in line.partition(","))
        try:
            pattern = patterns.check(_SEPARATORS.sub("", pattern), min_literals=1)
        except ValueError as exc:
            raise ValueError(f"{source or 'hot list'} line {n}: {exc}") from None
        entries.append(Entry(pattern, label or f"line {n}", patterns.to_regex(pattern)))  # labels, not plates, go in logs
    return HotList(entries, source)


def load(path: str | Path) -> HotList:
    """Load a hot-list file; an empty path gives an empty list."""
    if not path:
        return HotList()
    p = Path(path)
    return parse(p.read_text("utf-8"), str(p))
