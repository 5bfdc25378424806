"""Shared pieces of the technician tool: the layout, file writing, ownership, output."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from unit.update import SERVICE_USER, Layout


class Refused(Exception):
    """The step ran and cannot be done as asked (exit 1); the message says what to do."""


class Usage(Exception):
    """Bad input or a missing earlier step (exit 2)."""


def layout(args: argparse.Namespace) -> Layout:
    return Layout(Path(args.root))


def need_root(lay: Layout) -> None:
    """On a unit (root `/`) the tool writes root-owned files: it must run as root."""
    if lay.is_system and os.geteuid() != 0:
        raise Usage("run as root (sudo alpr-provision ...): the unit's identity and config are root-owned")


def write_file(path: Path, data: bytes | str, mode: int = 0o644, exclusive: bool = False) -> None:
    """Write atomically (temp file + rename) with `mode`; `exclusive` refuses to replace an existing file
    even under a race (the temp file is hard-linked into place)."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        if exclusive:
            os.link(tmp, path)          # FileExistsError if someone got there first
            os.unlink(tmp)
        else:
            os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def secure_dir(path: Path, mode: int) -> None:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, mode)


def chown_service(lay: Layout, path: Path, user: bool = True) -> None:
    """Give `path` to the service account (group only with user=False) when it exists; on a unit only."""
    if not lay.is_system or os.geteuid() != 0:
        return
    import grp
    import pwd
    try:
        gid = grp.getgrnam(SERVICE_USER).gr_gid
        uid = pwd.getpwnam(SERVICE_USER).pw_uid if user else 0
    except KeyError:
        return
    os.chown(path, uid, gid)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text("utf-8"))
        return doc if isinstance(doc, dict) else None
    except (OSError, ValueError):
        return None


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
