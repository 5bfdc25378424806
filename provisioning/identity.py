"""`alpr-provision init`: the unit's identity - an Ed25519 key and a unit id - in a root-only folder.

`/etc/alpr-unit/identity/` is 0700 root, `identity.key` (PKCS#8 PEM) 0600 root. The service never reads
it there: systemd hands it a copy at start (`LoadCredential=`, see firmware/systemd/alpr-unit.service).
An existing identity is never replaced without `--force`; a replaced key is kept beside the new one as
`identity.key.replaced-<time>` and the unit must be enrolled again (the central store knows only the
old public key).
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from provisioning.common import (Refused, Usage, chown_service, emit, layout, need_root, read_json, secure_dir,
                                 write_file)
from unit.update import Layout
from wire.read import ID_MAX, ID_RE
from wire.times import utc_now


def key_fingerprint(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def load_identity(lay: Layout) -> tuple[str, Ed25519PrivateKey]:
    """(unit_id, private key); Usage when `init` has not been run."""
    info = read_json(lay.identity_json)
    try:
        key = serialization.load_pem_private_key(lay.identity_key.read_bytes(), password=None)
    except OSError:
        raise Usage(f"no identity at {lay.identity_key}: run `alpr-provision init` first") from None
    except ValueError as exc:
        raise Usage(f"{lay.identity_key}: not a readable private key ({exc}); `alpr-provision init --force` "
                    "makes a new one (the unit must then be enrolled again)") from None
    if not isinstance(key, Ed25519PrivateKey) or not info or not info.get("unit_id"):
        raise Usage(f"identity in {lay.identity_dir} is incomplete: `alpr-provision init --force` remakes it")
    return info["unit_id"], key


def _default_unit_id(key: Ed25519PrivateKey) -> str:
    """`alpr-<Pi serial>` on a Pi (printed on nothing, but stable and unique), else from the key."""
    for p in ("/sys/firmware/devicetree/base/serial-number", "/proc/device-tree/serial-number"):
        try:
            serial = Path(p).read_text().strip("\x00\n ").lower()
        except OSError:
            continue
        serial = re.sub(r"[^0-9a-f]", "", serial)[-8:]
        if serial:
            return f"alpr-{serial}"
    return f"alpr-{key_fingerprint(key)[:8]}"


def init(lay: Layout, unit_id: str | None = None, force: bool = False) -> dict[str, Any]:
    if unit_id is not None and not ID_RE.match(unit_id):
        raise Usage(f"--unit-id {unit_id!r}: use letters, digits, '.', '_' or '-' (max {ID_MAX}, first a letter or digit)")
    existing = read_json(lay.identity_json)
    if lay.identity_key.exists() and not force:
        have = (existing or {}).get("unit_id")
        if unit_id and have and unit_id != have:
            raise Refused(f"this unit already has an identity ({have}); it is never replaced without --force "
                          f"(a new key must be enrolled again with a new token)")
        uid, key = load_identity(lay)
        return {"unit_id": uid, "key_id": key_fingerprint(key), "created": False,
                "path": str(lay.identity_key), "created_at": (existing or {}).get("created_at")}
    secure_dir(lay.etc, 0o750)
    chown_service(lay, lay.etc, user=False)           # root:alpr: the service reads its config there
    secure_dir(lay.identity_dir, 0o700)
    if lay.is_system:
        os.chown(lay.identity_dir, 0, 0)
    key = Ed25519PrivateKey.generate()
    uid = unit_id or (existing or {}).get("unit_id") or _default_unit_id(key)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    replaced = None
    if lay.identity_key.exists():            # --force: keep the old key beside, never lose it silently
        replaced = lay.identity_key.with_name(f"identity.key.replaced-{time.strftime('%Y%m%dT%H%M%S')}")
        os.replace(lay.identity_key, replaced)
    write_file(lay.identity_key, pem, 0o600, exclusive=True)
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    doc = {"unit_id": uid, "key_id": key_fingerprint(key), "public_key": base64.b64encode(raw).decode("ascii"),
           "created_at": utc_now()}
    write_file(lay.identity_json, json.dumps(doc, indent=1) + "\n", 0o600)
    return {**doc, "created": True, "path": str(lay.identity_key),
            **({"replaced": str(replaced)} if replaced else {})}


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("init", help="make the unit's identity (Ed25519 key and unit id); never overwrites",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--unit-id", help="the unit's id, as the central store will know it "
                                     "(default alpr-<Pi serial>, or from the key off a Pi)")
    p.add_argument("--force", action="store_true", help="replace an existing identity (the unit must be enrolled again)")
    p.add_argument("--json", action="store_true")
    return p


def run(args: argparse.Namespace) -> int:
    lay = layout(args)
    need_root(lay)
    res = init(lay, args.unit_id, args.force)
    if res["created"]:
        text = (f"identity made: unit {res['unit_id']}, key {res['key_id']} ({res['path']}, root only)"
                + (f"\nold key kept as {res['replaced']}; enroll again: alpr-provision enroll" if res.get("replaced") else "")
                + "\nnext: alpr-provision enroll --central URL --token TOKEN")
    else:
        text = (f"identity kept: unit {res['unit_id']}, key {res['key_id']} (made {res.get('created_at') or '?'}); "
                "use --force to replace it")
    emit(args, {"ok": True, **res}, text)
    return 0
