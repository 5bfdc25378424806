"""Command-line values that may look like options.

A url-safe token (`secrets.token_urlsafe`) starts with "-" about one time in 64, and argparse then
reads `--token -Xyz...` as a missing value followed by an unknown option. Joining such an option with
its value (`--token=-Xyz...`) before parsing keeps every token usable as printed.
"""
from __future__ import annotations

from collections.abc import Iterable


def join_opaque(argv: list[str], options: Iterable[str]) -> list[str]:
    """argv with each of `options` joined to the word after it, whatever that word looks like."""
    opaque = frozenset(options)
    out, i = [], 0
    while i < len(argv):
        if argv[i] in opaque and i + 1 < len(argv):
            out.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
            continue
        out.append(argv[i])
        i += 1
    return out
