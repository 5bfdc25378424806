"""Shared pieces of the technician tool: its errors, the layout it works on, output."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from unit.layout import Layout


class Refused(Exception):
    """The step ran and cannot be done as asked (exit 1); the message says what to do."""


class Usage(Exception):
    """Bad input or a missing earlier step (exit 2)."""


def layout(args: argparse.Namespace) -> Layout:
    """The unit layout under `--root`. On a unit (root `/`) the tool writes root-owned files: there it
    must run as root (Usage otherwise)."""
    lay = Layout(Path(args.root))
    if lay.is_system and os.geteuid() != 0:
        raise Usage("run as root (sudo alpr-provision ...): the unit's identity and config are root-owned")
    return lay


def emit(args: argparse.Namespace, doc: Any, text: str) -> None:
    if getattr(args, "json", False):
        print(json.dumps(doc, indent=1, default=str))
    else:
        print(text)


def fail(args: argparse.Namespace, message: str, code: int) -> int:
    if getattr(args, "json", False):
        print(json.dumps({"ok": False, "error": message}, indent=1))
    else:
        print(f"alpr-provision: {message}", file=sys.stderr)
    return code
