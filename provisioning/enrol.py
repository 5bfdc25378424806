"""`alpr-provision enroll`: register the unit with the central store and pin the keys it must trust.

One POST /v1/enroll with the one-time token from `alpr-central units enroll-token --site SITE`. The
answer names the unit's site and the central store's keys; they are pinned on the unit:

| file (in /etc/alpr-unit) | what | used by |
| --- | --- | --- |
| `central-seal.pub` | central X25519 sealing key (base64 raw) | every read is sealed to it (config `central.public_key_path`) |
| `central.json` | URL, unit id, site, key ids, the central Ed25519 signing key | `site` (writes `[uplink]`), `selftest` |
| `release.pub` | the release key (Ed25519, PEM) | `alpr-unit update` accepts only bundles it signed |

The release key: the central store's enrolment answer does not carry one today, so it is given as a
file (`--release-key release.pub`, from the release engineer). If a later central store adds
`release_public_key` to its answer, that is pinned, and a `--release-key` that disagrees with it is an
error. The key is kept apart from the central store's own signing key on purpose: whoever controls the
central server must not be able to push software to units.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from provisioning.common import Refused, Usage, emit, layout
from unit import identity
from unit.identity import EnrolmentRefused
from unit.keys import ed25519_key_id, ed25519_public_pem, load_ed25519_public
from unit.layout import Layout, read_json, write_file
from wire import seal
from wire.times import utc_now

NEW_TOKEN = "ask the central store's administrator for a new token: alpr-central units enroll-token --site SITE"


def _read_release_key(path: Path | None) -> Ed25519PublicKey | None:
    if path is None:
        return None
    try:
        return load_ed25519_public(Path(path).read_bytes())
    except OSError as exc:
        raise Usage(f"--release-key {path}: cannot read it ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise Usage(f"--release-key {path}: {exc}") from None


def _enroll(url: str, token: str, unit_id: str, key: Ed25519PrivateKey, ca_bundle: str | None,
            timeout: float) -> dict[str, Any]:
    try:
        return identity.enroll(url, token, unit_id, key, ca_bundle, timeout)
    except EnrolmentRefused as exc:
        raise _refusal(exc, unit_id) from None
    except requests.exceptions.SSLError as exc:
        raise Refused(f"TLS to {url} failed ({exc.__class__.__name__}): the store's certificate is not trusted; "
                      "give its CA with --ca-bundle FILE") from None
    except requests.exceptions.Timeout:
        raise Refused(f"{url} did not answer within {timeout:.0f} s: check the network and the URL") from None
    except requests.RequestException as exc:
        raise Refused(f"cannot reach the central store at {url} ({exc.__class__.__name__}): check the URL, "
                      "the network (DNS, route, firewall) and that the store is running") from None
    except ValueError as exc:
        raise _not_an_answer(exc) from None


def _not_an_answer(exc: Exception) -> Refused:
    return Refused(f"the central store's answer is not an enrolment answer ({exc}); the unit is registered "
                   "there but nothing was pinned - report this")


def _refusal(exc: EnrolmentRefused, unit_id: str) -> Refused:
    text = exc.detail
    if exc.status == 403:
        return Refused("the central store refused the token: it is unknown, expired or already used "
                       f"({text or 'no detail'}). Tokens work once, expire (24 h by default) and belong to the "
                       f"store that made them; {NEW_TOKEN}")
    if exc.status == 409:
        return Refused(f"the central store already has a unit called {unit_id!r} ({text}). If this replaces a "
                       "broken unit, have the administrator revoke the old one, or choose another id with "
                       "`alpr-provision init --force --unit-id NEW`; the token was not used")
    if exc.status == 400:
        return Refused(f"the central store rejected the request: {text}")
    return Refused(f"enrolment failed: HTTP {exc.status} {text} - is {exc.url} the central store?")


def enrol(lay: Layout, url: str, token: str | None, release_key: Path | None = None,
          ca_bundle: str | None = None, force: bool = False, timeout: float = 15.0) -> dict[str, Any]:
    if not url.startswith(("https://", "http://")):
        raise Usage(f"--central {url!r}: expected the store's base URL, e.g. https://central.example.org:8443")
    unit_id, key = identity.load(lay)
    release = _read_release_key(release_key)
    pinned = read_json(lay.central_json)
    already = bool(pinned and pinned.get("unit_key_id") == identity.key_id(key)
                   and pinned.get("url") == url.rstrip("/"))
    if already and not force:
        if release is not None:
            _pin_release(lay, release)
            pinned.update(release_key_id=ed25519_key_id(release), release_key_source="file")
            write_file(lay.central_json, _dump(pinned), 0o640)
        return {**pinned, "enrolled": False, "note": "already enrolled with this identity; nothing sent"}
    if not token:
        raise Usage("--token is required: " + NEW_TOKEN)
    answer = _enroll(url, token, unit_id, key, ca_bundle, timeout)
    try:
        sealing = seal.load_sealing_public(answer["sealing_public_key"])
        signing = load_ed25519_public(answer["signing_public_key"])
        site = str(answer["site"])
        central_release = (load_ed25519_public(answer["release_public_key"]) if answer.get("release_public_key")
                           else None)
    except (ValueError, KeyError, TypeError) as exc:
        raise _not_an_answer(exc) from None
    if answer.get("sealing_key_id") and answer["sealing_key_id"] != seal.sealing_key_id(sealing):
        raise Refused("the central store's sealing key does not match its own key id; nothing pinned")
    source = None
    problem = note = None
    doc_keep: dict[str, str] = {}           # enrolled again (--force): a release key pinned before stays
    if (central_release is not None and release is not None
            and ed25519_key_id(central_release) != ed25519_key_id(release)):
        problem = (f"the release key from --release-key ({ed25519_key_id(release)}) differs from the one the central "
                   f"store hands out ({ed25519_key_id(central_release)}); no release key pinned - check with the "
                   "release engineer which is right, then rerun with the right --release-key")
    elif central_release is not None:
        release, source = central_release, "central"
    elif release is not None:
        source = "file"
    elif lay.release_pub.exists() and pinned and pinned.get("release_key_id"):
        doc_keep = {"release_key_id": pinned["release_key_id"], "release_key_source": pinned.get("release_key_source", "file")}
    else:       # enrolled all the same: the key can be pinned later, without a new token
        note = ("no release key pinned (the central store does not hand one out and no --release-key was given): "
                "software updates need one and are refused until it is pinned, later, with "
                "alpr-provision enroll --central URL --release-key release.pub")
    write_file(lay.seal_pub, seal.sealing_public_b64(sealing) + "\n", 0o644)
    doc = {"url": url.rstrip("/"), "unit_id": unit_id, "site": site, "unit_key_id": identity.key_id(key),
           "sealing_public_key": answer["sealing_public_key"], "sealing_key_id": seal.sealing_key_id(sealing),
           "signing_public_key": answer["signing_public_key"], "signing_key_id": ed25519_key_id(signing),
           "ca_bundle": ca_bundle or "", "enrolled_at": utc_now()}
    if release is not None and source:
        _pin_release(lay, release)
        doc.update(release_key_id=ed25519_key_id(release), release_key_source=source)
    doc.update(doc_keep)
    write_file(lay.central_json, _dump(doc), 0o640)
    return {**doc, "enrolled": True, **({"problem": problem} if problem else {}), **({"note": note} if note else {})}


def _pin_release(lay: Layout, key: Ed25519PublicKey) -> None:
    write_file(lay.release_pub, ed25519_public_pem(key), 0o644)


def _dump(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=1) + "\n"


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("enroll", help="register with the central store (one-time token); pin its keys and the release key",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--central", required=True, metavar="URL", help="the central store's base URL")
    p.add_argument("--token", help="one-time token from `alpr-central units enroll-token --site SITE`")
    p.add_argument("--release-key", type=Path, metavar="FILE",
                   help="the release public key (release.pub) that signs updates, if the store does not hand one out")
    p.add_argument("--ca-bundle", help="CA file for the store's TLS certificate (a private CA)")
    p.add_argument("--force", action="store_true", help="enroll again even though this identity is already enrolled")
    p.add_argument("--timeout", type=float, default=15.0, help="seconds to wait for the store (default 15)")
    p.add_argument("--json", action="store_true")
    return p


def run(args: argparse.Namespace) -> int:
    lay = layout(args)
    res = enrol(lay, args.central, args.token, args.release_key, args.ca_bundle, args.force, args.timeout)
    problem = res.get("problem")
    if res["enrolled"]:
        text = (f"enrolled: unit {res['unit_id']} at site {res['site']} with {res['url']}\n"
                f"pinned: central sealing key {res['sealing_key_id']}, central signing key {res['signing_key_id']}, "
                f"release key {res.get('release_key_id', 'NONE')}"
                + (f" ({res['release_key_source']})" if res.get("release_key_source") else ""))
        text += f"\nnote: {res['note']}" if res.get("note") else ""
        text += f"\nproblem: {problem}" if problem else "\nnext: alpr-provision site ..."
    else:
        text = (f"{res['note']}: unit {res['unit_id']} at site {res['site']} with {res['url']}; "
                f"release key {res.get('release_key_id', 'NONE')}")
    emit(args, {"ok": not problem, **res}, text)
    return 1 if problem else 0
