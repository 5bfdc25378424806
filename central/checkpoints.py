"""Signed checkpoints of the audit chain: the store signs the head (entry count, last id and hash)
with its Ed25519 signing key, which lives in HOME/keys and never in the database, and appends the
signed head to an append-only file outside the audit table (HOME/audit/checkpoints.jsonl by default);
every audit report carries one too.

Why: the hash chain alone can be recomputed by anyone who can write the table, and a log emptied or
cut at its tail looks intact from inside. A signed head cannot be made without the key, so
`audit verify` checks the log against the latest one and names an emptied, cut, rewritten or
forged-extension log (`central.audit.verify`). A head is signed only after the chain verifies against
the previous one, so a tampered log is never blessed.

What this does not give: entries after the latest signed head are protected only by their own
signatures (a tail cut after that head goes unseen); someone with both the database and the signing
key can rewrite anything and sign it; someone who can edit the checkpoint file can drop lines from it
(keep copies: the reports hold them too, and the file can be made append-only with `chattr +a`).
"""
from __future__ import annotations

import base64
import json
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from central import audit
from central.clock import utcnow
from central.keys import CentralKeys
from wire.times import iso

DOMAIN = b"alpr-audit-checkpoint-v1\n"
FILE_NAME = "checkpoints.jsonl"
FIELDS = ("at", "entries", "head_id", "head_hash")


def default_file(home: Path) -> Path:
    return Path(home) / "audit" / FILE_NAME


def message(head: dict[str, Any]) -> bytes:
    doc = {k: head[k] for k in FIELDS}
    return DOMAIN + json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("ascii")


def public_b64(public_key: Ed25519PublicKey) -> str:
    return base64.b64encode(public_key.public_bytes(serialization.Encoding.Raw,
                                                    serialization.PublicFormat.Raw)).decode("ascii")


def sign(keys: CentralKeys, verdict: audit.Verdict, at: datetime | None = None) -> dict[str, Any]:
    head = {"at": iso(at or utcnow()), "entries": verdict.entries, "head_id": verdict.head_id,
            "head_hash": verdict.head_hash}
    return {**head, "public_key": keys.signing_public_b64, "signature": keys.sign(message(head))}


def valid(doc: Any, public_key: Ed25519PublicKey) -> bool:
    """Whether `doc` is a head signed by the store (the key given, never the one the line names)."""
    if not isinstance(doc, dict) or any(k not in doc for k in FIELDS):
        return False
    try:
        return audit.signature_ok(public_key, message(doc), doc.get("signature"))
    except (TypeError, ValueError, AttributeError):
        return False


def load(path: Path, public_key: Ed25519PublicKey) -> tuple[list[dict[str, Any]], list[str]]:
    """The signed heads in the file, oldest first, and a line per entry that is not the store's."""
    heads: list[dict[str, Any]] = []
    problems: list[str] = []
    if not path.exists():
        return heads, problems
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
        except ValueError:
            problems.append(f"{path.name} line {n}: not JSON")
            continue
        if valid(doc, public_key):
            heads.append(doc)
        else:
            problems.append(f"{path.name} line {n}: not signed by this store's key (forged checkpoint)")
    return heads, problems


def latest(heads: list[dict[str, Any]]) -> audit.SignedHead | None:
    if not heads:
        return None
    top = max(heads, key=lambda h: (h["head_id"] or 0, h["at"]))
    return audit.SignedHead(top["at"], top["entries"], top["head_id"], top["head_hash"])


def append(path: Path, head: dict[str, Any]) -> None:
    """One line, appended and flushed to disk (O_APPEND: never rewrites what is there)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (json.dumps(head, sort_keys=True) + "\n").encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)


def verify(engine: sa.Engine, public_key: Ed25519PublicKey, path: Path | None,
           expect: tuple[int, str] | None = None) -> audit.Verdict:
    """The chain checked against the latest signed head in `path`; a line in it that the store did
    not sign is itself a finding (problem `forged_checkpoint`)."""
    heads, problems = load(path, public_key) if path is not None else ([], [])
    verdict = audit.verify(engine, expect, checkpoint=latest(heads), public_key=public_key)
    if verdict.ok and problems:
        verdict.ok, verdict.problem, verdict.detail = False, "forged_checkpoint", "; ".join(problems[:5])
    return verdict


def checkpoint(engine: sa.Engine, keys: CentralKeys, path: Path | None, verdict: audit.Verdict | None = None,
               at: datetime | None = None) -> tuple[audit.Verdict, dict[str, Any] | None]:
    """Verify the chain against the latest signed head, then sign the head it has now (at `at`, by
    default now) and append it to `path` (None: sign only, for a report). Returns (verdict, the signed
    head or None if broken)."""
    public = keys.signing.public_key()
    verdict = verdict or verify(engine, public, path)
    if not verdict.ok:
        return verdict, None
    head = sign(keys, verdict, at)
    if path is not None:
        append(path, head)
    return verdict, head


def due(path: Path, every: timedelta, now: datetime | None = None) -> bool:
    """Whether the newest line in the file is older than `every` (or there is none)."""
    if not path.exists():
        return True
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    if not lines:
        return True
    try:
        last = datetime.fromisoformat(json.loads(lines[-1])["at"].replace("Z", "+00:00"))
    except (ValueError, KeyError, TypeError):
        return True
    return (now or utcnow()) - last >= every


def verify_for_app(state: Any) -> audit.Verdict:
    """`verify` with what a running app holds (`app.state`: engine, keys, settings)."""
    return verify(state.engine, state.keys.signing.public_key(), state.settings.checkpoint_file())
