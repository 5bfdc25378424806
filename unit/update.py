"""Signed software updates with A/B slots: bundles, slots, apply and rollback (`alpr-unit update`,
whose command line is `unit.commands.update`).

On a unit the code lives in two slots, `/opt/alpr/slots/a` and `/opt/alpr/slots/b`, each holding
`lib/` (the `unit`, `wire`, `models` and `provisioning` packages), `slot.json` (version, when and from what it
was installed) and the bundle's signed `manifest.json` + `manifest.sig`. `/opt/alpr/current` is a
relative symlink to the running slot; the service runs `/opt/alpr/venv/bin/python -m unit.cli run`
with `PYTHONPATH=/opt/alpr/current/lib`, so a restart picks up whatever `current` names.

A bundle (made by `firmware/build-bundle`) is a tar.gz:

    manifest.json   {"format": "alpr-bundle/1", "name", "version", "created_at", "requires": [...],
                     "files": [{"path": "lib/unit/cli.py", "sha256": "...", "size": N}, ...]}
    manifest.sig    {"key_id": "...", "signature": base64 Ed25519 over the exact bytes of manifest.json}
    payload/<path>  every file the manifest names, and nothing else

`apply` trusts nothing in a bundle before the manifest's signature verifies against the release key
pinned at provisioning (`/etc/alpr-unit/release.pub`); then every payload file must match its hash
and size, be a plain file under `payload/`, and be named once. A version not newer than the running
one is refused unless `--allow-downgrade`. The verified files go into the *inactive* slot, `current`
is switched by an atomic rename, the service restarted, and the tool waits for the new code to report
healthy (its status file written by a process started after the switch, twice, and as healthy as the
unit was before); if that does not happen within the timeout, `current` is switched back and the old
slot restarted. `update-state.json` records the attempt before the switch, so an update cut short by
a power cut is rolled back at the next boot (`update boot-check`, run by a oneshot unit before the
service).
"""
from __future__ import annotations

import base64
import configparser
import contextlib
import fcntl
import hashlib
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import tarfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterator

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from unit.health import read_status
from unit.keys import ed25519_key_id, load_ed25519_public
from unit.layout import SERVICE, Layout
from wire.times import utc_now

FORMAT = "alpr-bundle/1"
SLOTS = ("a", "b")
DEFAULT_RESTART = f"systemctl restart {SERVICE}"
PACKAGES = ("unit", "wire", "models", "provisioning")  # what a bundle carries into lib/
EXCLUDE_DIRS = {"__pycache__", "training", ".pytest_cache"}   # models/training never goes on a unit
EXCLUDE_SUFFIXES = (".pyc", ".pyo")
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
MAX_PAYLOAD_BYTES = 1024 * 1024 * 1024
MAX_FILES = 20000
VERSION_RE = re.compile(r"^\d+(\.\d+){0,3}$")


class UpdateError(Exception):
    """An update refused or failed; the message says why and what to do."""


class BadUsage(UpdateError):
    """The command cannot run as asked (missing file, no pinned key, bad config): exit 2."""


# -- the release key --------------------------------------------------------------------------------------
def pinned_release_key(layout: Layout) -> Ed25519PublicKey:
    """The release key that `alpr-provision enroll` pinned: the only key whose bundles are installed."""
    try:
        return load_ed25519_public(layout.release_pub.read_bytes())
    except OSError:
        raise BadUsage(f"no release key pinned at {layout.release_pub}: run `alpr-provision enroll` "
                       "(with --release-key FILE if the central store does not hand one out)") from None
    except ValueError as exc:
        raise BadUsage(f"{layout.release_pub}: {exc}") from None


# -- versions ----------------------------------------------------------------------------------------------
def parse_version(v: str) -> tuple[int, ...]:
    if not isinstance(v, str) or not VERSION_RE.match(v):
        raise ValueError(f"version {v!r}: expected dotted numbers such as 1.4.2")
    parts = [int(x) for x in v.split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def setup_cfg_version(src: Path) -> str | None:
    cp = configparser.ConfigParser()
    if not cp.read(src / "setup.cfg"):
        return None
    return cp.get("metadata", "version", fallback=None)


def setup_cfg_requires(src: Path) -> list[str]:
    """What a unit needs installed: the bare requirements and the `unit` extra of setup.cfg."""
    cp = configparser.ConfigParser()
    if not cp.read(src / "setup.cfg"):
        return []
    raw = cp.get("options", "install_requires", fallback="") + "\n" + cp.get("options.extras_require", "unit", fallback="")
    return [line.strip() for line in raw.splitlines() if line.strip()]


def missing_requirements(requires: list[str]) -> list[str]:
    """Requirements (setup.cfg style) not satisfied by the running interpreter's environment."""
    from importlib import metadata
    try:
        from packaging.requirements import Requirement
    except ImportError:                         # name-only check where packaging is not installed
        Requirement = None                      # type: ignore[assignment]
    missing = []
    for line in requires:
        if Requirement is not None:
            try:
                req = Requirement(line)
            except Exception:
                continue
            if req.marker is not None and not req.marker.evaluate():
                continue
            try:
                have = metadata.version(req.name)
            except metadata.PackageNotFoundError:
                missing.append(line)
                continue
            if req.specifier and not req.specifier.contains(have, prereleases=True):
                missing.append(f"{line} (have {have})")
        else:
            m = re.match(r"[A-Za-z0-9_.\-]+", line)
            if m and ";" not in line:
                try:
                    metadata.version(m.group(0))
                except metadata.PackageNotFoundError:
                    missing.append(line)
    return missing


# -- building a bundle (firmware/build-bundle) -------------------------------------------------------------
def _sha256_file(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    n = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            n += len(chunk)
    return h.hexdigest(), n


def collect_files(src: Path, packages: tuple[str, ...] = PACKAGES) -> list[tuple[str, Path]]:
    """(path in the slot, file on disk) for every file of `packages` under `src`, sorted."""
    out: list[tuple[str, Path]] = []
    for pkg in packages:
        top = src / pkg
        if not top.is_dir():
            raise BadUsage(f"{top}: no such package folder to bundle")
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = sorted(d for d in dirnames if d not in EXCLUDE_DIRS and not d.startswith("."))
            for name in sorted(filenames):
                p = Path(dirpath) / name
                if name.endswith(EXCLUDE_SUFFIXES) or name.startswith(".") or p.is_symlink():
                    continue
                out.append(("lib/" + p.relative_to(src).as_posix(), p))
    return sorted(out)


def build_bundle(src: str | Path, key: Ed25519PrivateKey, out: str | Path, version: str | None = None,
                 packages: tuple[str, ...] = PACKAGES, name: str = "alpr-gate") -> dict[str, Any]:
    """Make a signed bundle of `packages` from the source tree `src`; returns the manifest."""
    src = Path(src)
    version = version or setup_cfg_version(src)
    if not version:
        raise BadUsage(f"no version: give --version or a setup.cfg with [metadata] version in {src}")
    parse_version(version)
    files = collect_files(src, packages)
    entries = []
    for rel, p in files:
        digest, size = _sha256_file(p)
        entries.append({"path": rel, "sha256": digest, "size": size})
    manifest = {"format": FORMAT, "name": name, "version": version, "created_at": utc_now(),
                "requires": setup_cfg_requires(src), "files": entries}
    body = json.dumps(manifest, indent=1, sort_keys=True).encode("utf-8")
    sig = {"key_id": ed25519_key_id(key.public_key()), "signature": base64.b64encode(key.sign(body)).decode("ascii")}
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    with tarfile.open(tmp, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for member, data in (("manifest.json", body), ("manifest.sig", json.dumps(sig).encode())):
            info = tarfile.TarInfo(member)
            info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
            tar.addfile(info, io.BytesIO(data))
        for rel, p in files:
            info = tarfile.TarInfo("payload/" + rel)
            info.size, info.mode, info.mtime = p.stat().st_size, 0o644, int(p.stat().st_mtime)
            with open(p, "rb") as f:
                tar.addfile(info, f)
    os.replace(tmp, out)
    return manifest


# -- verifying a bundle ------------------------------------------------------------------------------------
@dataclass
class Verified:
    manifest: dict[str, Any]
    manifest_bytes: bytes
    signature: dict[str, Any]
    sha256: str               # of the bundle file

    @property
    def version(self) -> str:
        return self.manifest["version"]


def _bundle_sha(path: Path) -> str:
    return _sha256_file(path)[0]


def _read_member(tar: tarfile.TarFile, name: str, cap: int) -> bytes:
    try:
        m = tar.getmember(name)
    except KeyError:
        raise UpdateError(f"not a bundle: no {name}") from None
    if not m.isreg() or m.size > cap:
        raise UpdateError(f"not a bundle: {name} is not a plain file under {cap} bytes")
    f = tar.extractfile(m)
    assert f is not None
    return f.read()


def _check_signature(tar: tarfile.TarFile, trusted: Ed25519PublicKey) -> tuple[dict[str, Any], bytes, dict]:
    body = _read_member(tar, "manifest.json", MAX_MANIFEST_BYTES)
    try:
        sig = json.loads(_read_member(tar, "manifest.sig", 64 * 1024))
        signature = base64.b64decode(sig["signature"], validate=True)
    except (ValueError, KeyError, TypeError):
        raise UpdateError("refused: manifest.sig is not a signature record") from None
    trusted_id = ed25519_key_id(trusted)
    try:
        trusted.verify(signature, body)
    except InvalidSignature:
        named = str(sig.get("key_id", "?"))
        if named != trusted_id:
            raise UpdateError(f"refused: the bundle is signed by key {named}, not by the release key this unit "
                              f"trusts ({trusted_id}); it did not come from our release process") from None
        raise UpdateError("refused: the manifest's signature does not verify - the bundle was altered "
                          "after signing (or damaged in transfer); do not install it") from None
    try:
        manifest = json.loads(body)
    except ValueError:
        raise UpdateError("refused: signed manifest is not JSON") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise UpdateError(f"refused: bundle format {manifest.get('format') if isinstance(manifest, dict) else '?'!r}"
                          f", this unit reads {FORMAT!r}")
    try:
        parse_version(manifest.get("version"))
        files = manifest["files"]
        if not isinstance(files, list) or len(files) > MAX_FILES:
            raise ValueError("files")
        for e in files:
            if not (isinstance(e, dict) and isinstance(e.get("path"), str) and isinstance(e.get("sha256"), str)
                    and isinstance(e.get("size"), int)):
                raise ValueError("file entry")
    except (ValueError, KeyError, TypeError) as exc:
        raise UpdateError(f"refused: signed manifest is malformed ({exc})") from None
    return manifest, body, sig


def _safe_rel(name: str) -> str | None:
    """The slot-relative path of a payload member, or None when the name is unsafe."""
    p = PurePosixPath(name)
    if p.is_absolute() or not p.parts or p.parts[0] != "payload" or len(p.parts) < 2:
        return None
    if any(part in ("", ".", "..") for part in p.parts) or "\\" in name:
        return None
    return "/".join(p.parts[1:])


def verify_bundle(path: str | Path, trusted: Ed25519PublicKey, extract_to: Path | None = None) -> Verified:
    """Verify a bundle completely (signature, then every payload file); with `extract_to`, the files
    are written there as they are checked. Raises UpdateError naming the first problem."""
    path = Path(path)
    if not path.is_file():
        raise BadUsage(f"{path}: no such bundle file")
    try:
        tar = tarfile.open(path, "r:*")
    except (tarfile.TarError, OSError) as exc:
        raise UpdateError(f"refused: {path.name} is not a bundle (not a tar archive: {exc})") from None
    with tar:
        try:
            manifest, body, sig = _check_signature(tar, trusted)
            want = {e["path"]: e for e in manifest["files"]}
            if len(want) != len(manifest["files"]):
                raise UpdateError("refused: the manifest names a file twice")
            for rel in want:
                if _safe_rel("payload/" + rel) != rel:
                    raise UpdateError(f"refused: unsafe path in manifest: {rel!r}")
            seen: set[str] = set()
            total = 0
            for m in tar.getmembers():
                if m.name in ("manifest.json", "manifest.sig"):
                    continue
                if m.isdir():
                    if _safe_rel(m.name.rstrip("/")) is None and m.name.rstrip("/") != "payload":
                        raise UpdateError(f"refused: unexpected entry {m.name!r}")
                    continue
                rel = _safe_rel(m.name)
                if rel is None or not m.isreg():
                    raise UpdateError(f"refused: {m.name!r} is not a plain file under payload/ "
                                      "(links, devices and paths outside are never installed)")
                if rel not in want:
                    raise UpdateError(f"refused: {rel} is in the bundle but not in its signed manifest "
                                      "(a file was added after signing)")
                if rel in seen:
                    raise UpdateError(f"refused: {rel} appears twice in the bundle")
                seen.add(rel)
                entry = want[rel]
                total += m.size
                if m.size != entry["size"] or total > MAX_PAYLOAD_BYTES:
                    raise UpdateError(f"refused: {rel} is {m.size} bytes, the signed manifest says {entry['size']} "
                                      "(tampered or damaged)")
                src = tar.extractfile(m)
                assert src is not None
                h = hashlib.sha256()
                dst = None
                if extract_to is not None:
                    target = extract_to / rel
                    target.parent.mkdir(parents=True, exist_ok=True)
                    dst = open(target, "wb")
                    os.fchmod(dst.fileno(), 0o644)     # readable by the service user whatever root's umask
                try:
                    while chunk := src.read(1 << 20):
                        h.update(chunk)
                        if dst is not None:
                            dst.write(chunk)
                    if dst is not None:
                        dst.flush()
                        os.fsync(dst.fileno())
                finally:
                    if dst is not None:
                        dst.close()
                if h.hexdigest() != entry["sha256"]:
                    raise UpdateError(f"refused: {rel} does not match its hash in the signed manifest "
                                      "(tampered or damaged)")
            missing = sorted(set(want) - seen)
            if missing:
                raise UpdateError(f"refused: {len(missing)} file(s) of the signed manifest are missing, "
                                  f"e.g. {missing[0]}")
        except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
            raise UpdateError(f"refused: the bundle cannot be read or unpacked - damaged, truncated, or the disk is "
                              f"full ({type(exc).__name__}: {exc})") from None
    return Verified(manifest, body, sig, _bundle_sha(path))


# -- slots -------------------------------------------------------------------------------------------------
def current_slot(layout: Layout) -> str | None:
    try:
        target = os.readlink(layout.current)
    except OSError:
        return None
    name = PurePosixPath(target).name
    return name if name in SLOTS else None


def other(slot: str | None) -> str:
    return "b" if slot == "a" else "a"


def slot_info(layout: Layout, slot: str) -> dict[str, Any] | None:
    d = layout.slot(slot)
    if not d.is_dir():
        return None
    try:
        info = json.loads((d / "slot.json").read_text("utf-8"))
    except (OSError, ValueError):
        info = {"version": None, "note": "no slot.json"}
    return info


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def switch(layout: Layout, slot: str) -> None:
    """Point `current` at `slot` atomically (a new symlink renamed over the old one)."""
    tmp = layout.opt / f".current.{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    os.symlink(f"slots/{slot}", tmp)
    os.replace(tmp, layout.current)
    _fsync_dir(layout.opt)


def verify_slot(layout: Layout, slot: str) -> list[str]:
    """Re-hash a slot's files against its manifest; the problems found (empty when intact)."""
    d = layout.slot(slot)
    try:
        manifest = json.loads((d / "manifest.json").read_text("utf-8"))
    except (OSError, ValueError):
        return ["no manifest.json (installed by install.sh, not from a bundle): cannot verify"]
    problems = []
    for e in manifest.get("files", []):
        p = d / e["path"]
        try:
            digest, size = _sha256_file(p)
        except OSError:
            problems.append(f"missing {e['path']}")
            continue
        if digest != e["sha256"]:
            problems.append(f"changed {e['path']}")
    return problems


def install_slot(layout: Layout, slot: str, bundle: Path, trusted: Ed25519PublicKey) -> Verified:
    """Verify `bundle` while extracting it into a staging folder, then put it in place as `slot`."""
    layout.slots.mkdir(parents=True, exist_ok=True)
    staging = layout.slots / f".{slot}.new-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        v = verify_bundle(bundle, trusted, extract_to=staging)
        (staging / "manifest.json").write_bytes(v.manifest_bytes)
        (staging / "manifest.sig").write_text(json.dumps(v.signature), "utf-8")
        _write_json(staging / "slot.json", {"version": v.version, "installed_at": utc_now(),
                                            "bundle": bundle.name, "bundle_sha256": v.sha256,
                                            "signed_by": v.signature.get("key_id"),
                                            "files": len(v.manifest["files"])})
        for dirpath, _dirs, _files in os.walk(staging):
            os.chmod(dirpath, 0o755)
        _fsync_dir(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    final = layout.slot(slot)
    old = layout.slots / f".{slot}.old-{os.getpid()}"
    if final.exists():
        os.replace(final, old)
    os.replace(staging, final)
    _fsync_dir(layout.slots)
    shutil.rmtree(old, ignore_errors=True)
    return v


# -- health ------------------------------------------------------------------------------------------------
def baseline(status_path: Path, interval_s: float, now: float | None = None) -> str:
    """'ok' when the running unit is healthy now (then the new code must be too), else 'running'."""
    now = time.time() if now is None else now
    snap = read_status(status_path)
    if not snap or snap.get("stopped_at"):
        return "running"
    fresh = now - float(snap.get("updated", 0)) <= max(3 * interval_s, 15.0)
    return "ok" if fresh and snap.get("state") == "ok" else "running"


def wait_healthy(status_path: Path, since: float, timeout: float, require: str,
                 poll: float = 0.1, clock: Callable[[], float] = time.time) -> tuple[bool, str]:
    """Wait for a process started at or after `since` to write the status file twice (alive, not just
    started) with a state meeting `require` ('ok', or 'running': any state). (healthy, what was seen)."""
    deadline = time.monotonic() + timeout
    first: dict[str, Any] | None = None
    seen = "no status written since the switch"
    while time.monotonic() < deadline:
        snap = read_status(status_path)
        if snap is not None:
            updated = float(snap.get("updated", 0) or 0)
            started = updated - float(snap.get("uptime_s", 0) or 0)
            if updated >= since and started >= since - 1.0 and not snap.get("stopped_at"):
                state = str(snap.get("state", "?"))
                seen = f"new process {snap.get('pid')} reports {state}" + (
                    f" ({'; '.join(map(str, snap.get('problems') or []))})" if snap.get("problems") else "")
                good = require == "running" or state == "ok"
                if good and first is not None and first.get("pid") == snap.get("pid") \
                        and updated > float(first.get("updated", 0)):
                    return True, seen
                if good and (first is None or first.get("pid") != snap.get("pid")):
                    first = snap
                elif not good:
                    first = None
        time.sleep(poll)
    return False, seen


def restart(cmd: list[str], timeout: float) -> tuple[bool, str]:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        return False, f"restart command not found: {cmd[0]}"
    except subprocess.TimeoutExpired:
        return False, f"restart command did not finish in {timeout:.0f} s"
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [""]
        return False, f"restart command failed ({proc.returncode}): {tail[0][:200]}"
    return True, ""


# -- apply / roll back -------------------------------------------------------------------------------------
@contextlib.contextmanager
def update_lock(layout: Layout, wait: bool = True) -> Iterator[bool]:
    layout.opt.mkdir(parents=True, exist_ok=True)
    with open(layout.lock, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def read_state(layout: Layout) -> dict[str, Any]:
    return read_status(layout.update_state) or {}


def recover_interrupted(layout: Layout) -> dict[str, Any] | None:
    """An update that was switched to but never confirmed (power cut, killed): go back to the slot it
    came from. Call with the update lock held. Returns the new state, or None if nothing to do."""
    st = read_state(layout)
    if st.get("state") != "trying":
        return None
    back = st.get("from")
    if back in SLOTS and layout.slot(back).is_dir():
        switch(layout, back)
        st.update(state="rolled_back", finished_at=utc_now(),
                  reason="the update was interrupted before the new slot was confirmed healthy")
    else:
        st.update(state="confirmed", finished_at=utc_now(),
                  reason="interrupted first install (no slot to return to); kept")
    _write_json(layout.update_state, st)
    return st


@dataclass
class ApplyOptions:
    allow_downgrade: bool = False
    restart_cmd: tuple[str, ...] = tuple(shlex.split(DEFAULT_RESTART))
    config: Path | None = None
    health_timeout: float = 180.0
    restart_timeout: float = 240.0
    poll: float = 0.2
    check_requirements: bool = True


def apply(layout: Layout, bundle: str | Path, opts: ApplyOptions,
          log: Callable[[str], None] = lambda _m: None) -> dict[str, Any]:
    """Verify, install into the inactive slot, switch, restart, wait for health, roll back if not.
    Returns a result dict; raises UpdateError (refused before anything changed) or BadUsage."""
    from unit.config import ConfigError, load as load_config

    bundle = Path(bundle)
    trusted = pinned_release_key(layout)
    cfg_path = opts.config or layout.config
    try:
        cfg = load_config(cfg_path)
    except ConfigError as exc:
        raise BadUsage(f"cannot judge the new software's health without the unit config: {exc}") from None
    status_path = Path(cfg.status_path)
    with update_lock(layout) as _locked:
        recovered = recover_interrupted(layout)
        if recovered:
            log(f"an earlier update had been interrupted; rolled back to slot {recovered.get('from')}")
        cur = current_slot(layout)
        cur_info = slot_info(layout, cur) if cur else None
        cur_version = (cur_info or {}).get("version")
        # 1. verify completely before touching anything
        v = verify_bundle(bundle, trusted)
        if cur_version:
            try:
                newer = parse_version(v.version) > parse_version(cur_version)
            except ValueError:
                newer = True
            if not newer and not opts.allow_downgrade:
                raise UpdateError(f"refused: bundle version {v.version} is not newer than the running "
                                  f"{cur_version} (slot {cur}); use --allow-downgrade to go back on purpose")
        if opts.check_requirements:
            missing = missing_requirements(list(v.manifest.get("requires") or []))
            if missing:
                raise UpdateError("refused: this release needs Python packages the unit's venv lacks: "
                                  + ", ".join(missing) + "; rerun firmware/install.sh from the release first")
        target = other(cur)
        log(f"verified {bundle.name}: version {v.version}, {len(v.manifest['files'])} files, "
            f"signed by {v.signature.get('key_id')}")
        # 2. install into the inactive slot (verified again while extracting: the file may have changed)
        install_slot(layout, target, bundle, trusted)
        log(f"installed into slot {target}")
        # 3. record, then switch
        require = baseline(status_path, cfg.health.interval_s)
        state = {"state": "trying", "from": cur, "to": target, "from_version": cur_version,
                 "to_version": v.version, "started_at": utc_now(), "require": require}
        _write_json(layout.update_state, state)
        since = time.time()
        switch(layout, target)
        log(f"switched current -> slot {target}; restarting the service, waiting up to "
            f"{opts.health_timeout:.0f} s for it to report {'ok' if require == 'ok' else 'running'}")
        ok, why = restart(list(opts.restart_cmd), opts.restart_timeout)
        if ok:
            ok, why = wait_healthy(status_path, since, opts.health_timeout, require, opts.poll)
        result = {"bundle": str(bundle), "version": v.version, "slot": target, "previous_slot": cur,
                  "previous_version": cur_version, "health": why}
        if ok:
            state.update(state="confirmed", finished_at=utc_now(), health=why)
            _write_json(layout.update_state, state)
            log(f"healthy: {why}")
            return {"result": "installed", **result}
        # 4. not healthy: back to where we were
        log(f"not healthy: {why}")
        if cur is None:
            state.update(state="failed", finished_at=utc_now(), health=why)
            _write_json(layout.update_state, state)
            return {"result": "failed", **result, "detail": "no previous slot to roll back to"}
        switch(layout, cur)
        state.update(state="rolled_back", finished_at=utc_now(), health=why)
        _write_json(layout.update_state, state)
        log(f"rolled back: current -> slot {cur}; restarting the previous version")
        since = time.time()
        back_ok, back_why = restart(list(opts.restart_cmd), opts.restart_timeout)
        if back_ok:
            back_ok, back_why = wait_healthy(status_path, since, opts.health_timeout, "running", opts.poll)
        state.update(rollback_health=back_why, rollback_ok=back_ok)
        _write_json(layout.update_state, state)
        return {"result": "rolled_back" if back_ok else "rollback_unhealthy", **result,
                "rollback_health": back_why}


def boot_check(layout: Layout) -> dict[str, Any]:
    """At boot, before the service: an update never confirmed is rolled back."""
    with update_lock(layout, wait=False) as got:
        if not got:
            return {"result": "busy", "detail": "an update is running"}
        st = recover_interrupted(layout)
        if st is None:
            return {"result": "ok", "current": current_slot(layout)}
        return {"result": st["state"], "current": current_slot(layout), "detail": st.get("reason", "")}


def status(layout: Layout, verify: bool = False) -> dict[str, Any]:
    cur = current_slot(layout)
    slots = {}
    for s in SLOTS:
        info = slot_info(layout, s)
        entry: dict[str, Any] = {"state": "empty"} if info is None else {
            "state": "active" if s == cur else "inactive", **info}
        if verify and info is not None:
            problems = verify_slot(layout, s)
            entry["integrity"] = "ok" if not problems else problems
        slots[s] = entry
    try:
        rk = ed25519_key_id(load_ed25519_public(layout.release_pub.read_bytes()))
    except (OSError, ValueError):
        rk = None
    return {"current": cur, "slots": slots, "last_update": read_state(layout) or None, "release_key": rk}
