"""The unit's identity: an Ed25519 key and a unit id, made once, kept root-only, enrolled once.

`/etc/alpr-unit/identity/` is 0700 root; in it `identity.key` (PKCS#8 PEM) and `unit.json` (unit id,
public key, key id, when made), both 0600 root. The service never reads the key there: systemd hands it
a copy at start (`LoadCredential=`, see firmware/systemd/alpr-unit.service), whose path the config
names (`uplink.identity_key_path`). An identity is never replaced without `force`; a replaced key is
kept beside the new one as `identity.key.replaced-<time>`, and the unit must be enrolled again (the
central store knows only the old public key).

Enrolment registers the public key with the central store once, with a one-time token
(`alpr-central units enroll-token --site SITE`); the answer names the unit's site and the store's keys.
`alpr-provision init` and `enroll` are the technician's commands for these steps.
"""
from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from unit.keys import ed25519_key_id, ed25519_public_b64, load_ed25519_private, save_ed25519_private
from unit.layout import Layout, chown_service, read_json, secure_dir, write_file
from wire import paths
from wire.read import ID_MAX, ID_RE
from wire.times import utc_now


class IdentityError(Exception):
    """No usable identity, or a bad unit id; the message says what to run."""


class IdentityConflict(Exception):
    """Another unit id was asked for than the identity this unit already has."""


class EnrolmentRefused(RuntimeError):
    """The central store answered the enrolment with an error status."""

    def __init__(self, status: int, detail: str, url: str):
        super().__init__(f"enrolment refused ({status}): {detail or 'no detail'}")
        self.status, self.detail, self.url = status, detail, url


def load(lay: Layout) -> tuple[str, Ed25519PrivateKey]:
    """(unit_id, private key) from the root-only folder."""
    info = read_json(lay.identity_json)
    try:
        key = load_ed25519_private(lay.identity_key)
    except OSError:
        raise IdentityError(f"no identity at {lay.identity_key}: run `alpr-provision init` first") from None
    except ValueError as exc:
        raise IdentityError(f"{exc}; `alpr-provision init --force` makes a new one "
                            "(the unit must then be enrolled again)") from None
    if not info or not info.get("unit_id"):
        raise IdentityError(f"identity in {lay.identity_dir} is incomplete: `alpr-provision init --force` remakes it")
    return info["unit_id"], key


def key_id(key: Ed25519PrivateKey) -> str:
    """The fingerprint of the identity's public key, as enrolment and `selftest` show it."""
    return ed25519_key_id(key.public_key())


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
    return f"alpr-{key_id(key)[:8]}"


def create(lay: Layout, unit_id: str | None = None, force: bool = False) -> dict[str, Any]:
    """Make the identity, or keep the one there (`created` False) unless `force`."""
    if unit_id is not None and not ID_RE.match(unit_id):
        raise IdentityError(f"--unit-id {unit_id!r}: use letters, digits, '.', '_' or '-' "
                            f"(max {ID_MAX}, first a letter or digit)")
    existing = read_json(lay.identity_json)
    if lay.identity_key.exists() and not force:
        have = (existing or {}).get("unit_id")
        if unit_id and have and unit_id != have:
            raise IdentityConflict(f"this unit already has an identity ({have}); it is never replaced without "
                                   "--force (a new key must be enrolled again with a new token)")
        uid, key = load(lay)
        return {"unit_id": uid, "key_id": key_id(key), "created": False,
                "path": str(lay.identity_key), "created_at": (existing or {}).get("created_at")}
    secure_dir(lay.etc, 0o750)
    chown_service(lay, lay.etc, user=False)           # root:alpr: the service reads its config there
    secure_dir(lay.identity_dir, 0o700)
    if lay.is_system:
        os.chown(lay.identity_dir, 0, 0)
    key = Ed25519PrivateKey.generate()
    uid = unit_id or (existing or {}).get("unit_id") or _default_unit_id(key)
    replaced = None
    if lay.identity_key.exists():            # --force: keep the old key beside, never lose it silently
        replaced = lay.identity_key.with_name(f"identity.key.replaced-{time.strftime('%Y%m%dT%H%M%S')}")
        os.replace(lay.identity_key, replaced)
    save_ed25519_private(lay.identity_key, key)
    doc = {"unit_id": uid, "key_id": key_id(key), "public_key": ed25519_public_b64(key.public_key()),
           "created_at": utc_now()}
    write_file(lay.identity_json, json.dumps(doc, indent=1) + "\n", 0o600)
    return {**doc, "created": True, "path": str(lay.identity_key),
            **({"replaced": str(replaced)} if replaced else {})}


def enroll(url: str, token: str, unit_id: str, key: Ed25519PrivateKey, ca_bundle: str | None = None,
           timeout: float = 15.0) -> dict[str, Any]:
    """Register this unit's public key with a one-time token. Returns the store's answer: site,
    sealing_public_key (X25519, for wire.seal), sealing_key_id, signing_public_key (Ed25519).
    EnrolmentRefused when the store says no; ValueError when its answer is not a JSON object;
    requests' exceptions when it cannot be reached."""
    resp = requests.post(url.rstrip("/") + paths.ENROL, timeout=timeout, verify=ca_bundle or True,
                         json={"token": token, "unit_id": unit_id, "public_key": ed25519_public_b64(key.public_key())})
    if resp.status_code != 200:
        raise EnrolmentRefused(resp.status_code, _error_detail(resp), resp.url)
    try:
        answer = resp.json()
    except ValueError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(answer, dict):
        raise ValueError("not a JSON object")
    return answer


def _error_detail(resp: requests.Response) -> str:
    try:
        doc = resp.json()
    except ValueError:
        return resp.text[:200]
    return str(doc.get("error") or "") if isinstance(doc, dict) else ""
