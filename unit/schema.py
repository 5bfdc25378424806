"""Config sections as dataclasses: each key's default, bounds and whether it applies live, in one place.

A section is a frozen dataclass whose fields are the keys of one TOML table. `key()` puts a field's
checks in its metadata (bounds, choices, a path, live or not); `read()` reads a table into the
dataclass, every error naming the dotted key; a check across keys raises `BadValue` from the
dataclass's `__post_init__`. `unit.config` builds the unit's config from such sections, and each camera
kind declares its `[camera.<kind>]` options the same way (`unit.sources`).
"""
from __future__ import annotations

import math
import types
import typing
from dataclasses import MISSING, Field, fields
from typing import Any, Callable

from wire.read import text_problem

REQUIRED = object()


class ConfigError(ValueError):
    """The config file is unusable; the message starts with the dotted key at fault."""


class BadValue(ValueError):
    """A value a section refuses given its other keys (raised from its `__post_init__`); `key` is the
    key's name within the section, and `read()` turns it into a ConfigError naming the dotted key."""

    def __init__(self, key: str, expected: str, got: Any):
        super().__init__(f"{key}: expected {expected}, got {got!r}")
        self.key, self.expected, self.got = key, expected, got


def key(lo: float | None = None, hi: float | None = None, *, choices: tuple[str, ...] | None = None,
        live: bool = False, path: bool = False, nonempty: bool = False, max_len: int | None = None,
        read: Callable[["Section", str, Any], Any] | None = None) -> dict[str, Any]:
    """Field metadata. `lo`/`hi`: bounds of a number; `choices`: the strings allowed; `live`: applied
    while the unit runs, on reload, without a restart; `path`: relative to the config file's folder;
    `max_len`: a text that travels in every read, held to the wire contract's rule for such texts
    (`wire.read.text_problem`: this many characters at most, no control characters);
    `read`: a reader `(section, key, default) -> value` for a value that is not a plain number,
    string or flag."""
    return {"lo": lo, "hi": hi, "choices": choices, "live": live, "path": path, "nonempty": nonempty,
            "max_len": max_len, "read": read}


DERIVED = {"derived": True}      # metadata of a field that is not a key of the table (set by the reader)


def is_live(f: Field) -> bool:
    return bool(f.metadata.get("live"))


class Section:
    """Typed reads from one table of the TOML document; every failure names the dotted key."""

    def __init__(self, data: Any, prefix: str, known: set[str] | None = None):
        if not isinstance(data, dict):
            raise ConfigError(f"{prefix or 'top level'}: expected a table, got {type(data).__name__}")
        self.data, self.prefix, self.known = data, prefix, known

    def key(self, k: str) -> str:
        return f"{self.prefix}.{k}" if self.prefix else k

    def value(self, k: str, default: Any) -> Any:
        if k not in self.data:
            if default is REQUIRED:
                raise ConfigError(f"{self.key(k)}: missing (required)")
            return default
        return self.data[k]

    def bad(self, k: str, what: str, got: Any) -> ConfigError:
        return ConfigError(f"{self.key(k)}: expected {what}, got {got!r}")

    def text(self, k: str, default: Any = REQUIRED, nonempty: bool = False) -> str:
        v = self.value(k, default)
        if not isinstance(v, str) or (nonempty and not v.strip()):
            raise self.bad(k, "a non-empty string" if nonempty else "a string", v)
        return v

    def choice(self, k: str, options: tuple[str, ...], default: Any = REQUIRED) -> str:
        v = self.value(k, default)
        if v not in options:
            raise self.bad(k, "one of " + ", ".join(repr(o) for o in options), v)
        return v

    def flag(self, k: str, default: Any = REQUIRED) -> bool:
        v = self.value(k, default)
        if not isinstance(v, bool):
            raise self.bad(k, "true or false", v)
        return v

    def wire_text(self, k: str, max_len: int, default: Any = REQUIRED) -> str:
        """A text that travels in every read (unit id, site, lane name): refused here, naming the key,
        whenever the store would refuse the reads that carry it (`wire.read.text_problem`)."""
        v = self.value(k, default)
        problem = text_problem(v, max_len)
        if problem:
            raise self.bad(k, f"a name the central store accepts ({problem})", v)
        return v

    def num(self, k: str, default: Any = REQUIRED, lo: float | None = None, hi: float | None = None,
            integer: bool = False) -> Any:
        v = self.value(k, default)
        ok_type = isinstance(v, int) if integer else isinstance(v, (int, float))
        # TOML has nan and inf: neither is a usable setting (nan passes every comparison with a bound)
        if (isinstance(v, bool) or not ok_type or not math.isfinite(v)
                or (lo is not None and v < lo) or (hi is not None and v > hi)):
            what = "an integer" if integer else "a number"
            if lo is not None and hi is not None:
                what += f" from {lo} to {hi}"
            elif lo is not None:
                what += f" >= {lo}"
            raise self.bad(k, what, v)
        return int(v) if integer else float(v)

    def table(self, k: str) -> dict[str, Any]:
        v = self.value(k, {})
        if not isinstance(v, dict):
            raise self.bad(k, "a table", v)
        return v

    def check_unknown(self) -> None:
        if self.known is None:
            return
        for k in self.data:
            if k not in self.known:
                raise ConfigError(f"{self.key(k)}: unknown key (known: {', '.join(sorted(self.known))})")


def keys(cls: type) -> set[str]:
    """The TOML keys of a section class."""
    return {f.name for f in fields(cls) if not f.metadata.get("derived")}


def _default(f: Field) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return REQUIRED


def _optional(hint: Any) -> Any:
    """`X` for a hint `X | None`, else None."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(hint)) == 2:
            return args[0]
    return None


def read_value(s: Section, f: Field, hint: Any, resolve: Callable[[str], str] = str) -> Any:
    """One key of `s`, checked as field `f` of type `hint` says."""
    m, k, default = f.metadata, f.name, _default(f)
    if m.get("read"):
        return m["read"](s, k, default)
    inner = _optional(hint)
    if inner is not None:
        if s.data.get(k) is None:
            return None
        hint, default = inner, REQUIRED
    if hint is bool:
        return s.flag(k, default)
    if hint is int or hint is float:
        return s.num(k, default, m.get("lo"), m.get("hi"), integer=hint is int)
    if hint is str:
        if m.get("choices"):
            return s.choice(k, m["choices"], default)
        if m.get("max_len"):
            return s.wire_text(k, m["max_len"], default)
        v = s.text(k, default, nonempty=bool(m.get("nonempty")))
        return resolve(v) if m.get("path") and v else v
    raise TypeError(f"{k}: no reader for a {hint!r} key; give it key(read=...)")


def read(data: Any, prefix: str, cls: type, resolve: Callable[[str], str] = str, *,
         extra_keys: set[str] = frozenset(), given: dict[str, Any] | None = None) -> Any:
    """One TOML table as a `cls`. `given`: values read already (keys read another way, derived
    fields); `extra_keys`: sub-tables the caller reads itself."""
    s = Section(data, prefix, keys(cls) | set(extra_keys))
    s.check_unknown()
    hints = typing.get_type_hints(cls)
    given = given or {}
    values = {f.name: given[f.name] if f.name in given else read_value(s, f, hints[f.name], resolve)
              for f in fields(cls) if f.name in given or not f.metadata.get("derived")}
    try:
        return cls(**values)
    except BadValue as exc:
        raise s.bad(exc.key, exc.expected, exc.got) from None
