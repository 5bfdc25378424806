"""Where an installed unit keeps things, who owns them, and how a file is put there.

One `Layout` names every path that the technician's tool (`alpr-provision`), the updater
(`alpr-unit update`) and the systemd units agree on, under a root that is `/` on a unit and a
temporary folder in tests and image builds. `firmware/install.sh` and `firmware/systemd/` spell the
same paths in shell and unit-file syntax; docs/firmware.md and docs/provisioning.md list them.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SERVICE = "alpr-unit.service"
SERVICE_USER = "alpr"           # the account the service runs as (made by firmware/install.sh)


@dataclass(frozen=True)
class Layout:
    """The paths of an installed unit under `root`, always made absolute: the paths written into the
    unit's config must not depend on the folder a command happened to run in."""
    root: Path = Path("/")

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root).resolve())

    def _p(self, rel: str) -> Path:
        return self.root / rel

    @property
    def is_system(self) -> bool:
        return self.root.resolve() == Path("/")

    @property
    def etc(self) -> Path:
        return self._p("etc/alpr-unit")

    @property
    def identity_dir(self) -> Path:               # root only (0700): the unit's private key
        return self.etc / "identity"

    @property
    def identity_key(self) -> Path:
        return self.identity_dir / "identity.key"

    @property
    def identity_json(self) -> Path:
        return self.identity_dir / "unit.json"

    @property
    def central_json(self) -> Path:               # what enrolment pinned
        return self.etc / "central.json"

    @property
    def seal_pub(self) -> Path:
        return self.etc / "central-seal.pub"

    @property
    def release_pub(self) -> Path:
        return self.etc / "release.pub"

    @property
    def config(self) -> Path:
        return self.etc / "config.toml"

    @property
    def site_json(self) -> Path:
        return self.etc / "site.json"

    @property
    def state(self) -> Path:                      # the service's writable directory
        return self._p("var/lib/alpr-unit")

    @property
    def opt(self) -> Path:
        return self._p("opt/alpr")

    @property
    def slots(self) -> Path:
        return self.opt / "slots"

    @property
    def current(self) -> Path:
        return self.opt / "current"

    @property
    def update_state(self) -> Path:
        return self.opt / "update-state.json"

    @property
    def lock(self) -> Path:
        return self.opt / "update.lock"

    @property
    def service_identity_path(self) -> str:
        """The identity key as the service sees it. On a unit the key stays in the root-only folder and
        systemd hands the service a copy (`LoadCredential=`); elsewhere the file itself is used."""
        if self.is_system:
            return f"/run/credentials/{SERVICE}/identity.key"
        return str(self.identity_key)

    def slot(self, name: str) -> Path:
        return self.slots / name


def default_root() -> Path:
    """`/`, or `$ALPR_ROOT` to work on a unit image mounted elsewhere."""
    return Path(os.environ.get("ALPR_ROOT", "/"))


def write_file(path: Path, data: bytes | str, mode: int = 0o644, exclusive: bool = False) -> None:
    """Write atomically (temp file + rename) with `mode`; `exclusive` refuses to replace an existing file
    even under a race (the temp file is hard-linked into place; FileExistsError)."""
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


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from `path`, or None when it is missing, unreadable or not an object."""
    try:
        doc = json.loads(path.read_text("utf-8"))
        return doc if isinstance(doc, dict) else None
    except (OSError, ValueError):
        return None


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
