"""Structured logs: one JSON object a line for journald and collectors, or plain text for a person.

Add fields to a record with `extra={"fields": {...}}`. Plates are never logged: a unit's logs are as
exposed as its SD card, and only the sealed buffer may hold what was read.
"""
from __future__ import annotations

import json
import logging
import sys
from typing import IO

from wire.times import utc_ms

_HANDLER_NAME = "alpr-unit"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": utc_ms(record.created),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            out.update({k: v for k, v in fields.items() if k not in out})
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, separators=(",", ":"))


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict) and fields:
            text += "  " + " ".join(f"{k}={v}" for k, v in fields.items())
        return text


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the moment (it may be swapped after set-up)."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def setup(level: str = "INFO", fmt: str = "json", stream: IO[str] | None = None) -> logging.Handler:
    """Install (or reconfigure, on a live reload) the unit's one log handler on the root logger."""
    root = logging.getLogger()
    handler = next((h for h in root.handlers if h.get_name() == _HANDLER_NAME), None)
    if handler is None or (stream is not None and getattr(handler, "stream", None) is not stream):
        if handler is not None:
            root.removeHandler(handler)
        handler = logging.StreamHandler(stream) if stream is not None else _StderrHandler()
        handler.set_name(_HANDLER_NAME)
        root.addHandler(handler)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    return handler
