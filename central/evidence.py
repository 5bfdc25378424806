"""Evidence export (policy 462.4): a held case's reads and images, written to a folder for portable
media, with a manifest of SHA-256 hashes signed by the central signing key and a chain-of-custody
record.

Layout of the folder:
    reads.jsonl              one read a line (the full stored record), oldest first
    images/<read_id>-crop.jpg, images/<read_id>-context.jpg
    custody.json             who exported what, when, from which hold, for which case
    chain-of-custody.txt     the same, printable, with lines for each hand-over
    manifest.json            every file above with its size and SHA-256, the hold and case, the key
    manifest.sig             base64 Ed25519 signature over the exact bytes of manifest.json
`verify` (also `alpr-central evidence verify DIR`) checks the signature against the central key, then
every file against the manifest, and reports any file changed, missing or added.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from central import audit
from central.clock import utcnow
from central.errors import ApiError
from central.keys import CentralKeys
from central.purposes import EVIDENCE_PURPOSE
from central.schema import legal_hold_reads, legal_holds, read_images, reads
from central.search import read_doc
from wire.times import iso

FORMAT = "alpr-evidence/1"
MANIFEST, SIGNATURE = "manifest.json", "manifest.sig"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _private_dir(path: Path) -> None:
    """A folder only its owner can enter: the bundle holds plates and images (0700, whatever the umask)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def _write(path: Path, data: bytes) -> None:
    _private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)     # never overwrite; owner only
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _custody_text(c: dict[str, Any]) -> str:
    lines = [
        "CHAIN OF CUSTODY - ALPR EVIDENCE (policy 462.4)",
        "",
        f"Case number:        {c['case_number']}",
        f"Legal hold:         {c['hold']['id']} placed by {c['hold']['placed_by']} at {c['hold']['placed_at']}",
        f"Hold reason:        {c['hold']['reason']}",
        f"Exported by:        {c['exported_by']['username']} ({c['exported_by']['agency']})",
        f"Exported at:        {c['exported_at']}",
        f"Source:             {c['source']}",
        f"Reads / images:     {c['read_count']} / {c['image_count']}",
        f"Signing key:        {c['signing_public_key']}",
        "",
        "Verify with: alpr-central evidence verify <this folder>",
        "",
        "Transfers (date/time, released by, received by, purpose, signatures):",
    ]
    lines += ["", "_" * 100] * 6
    return "\n".join(lines) + "\n"


def export(engine: sa.Engine, keys: CentralKeys, who: audit.Who, hold_id: int, out_dir: Path) -> dict[str, Any]:
    """Write the bundle for an active hold into `out_dir` (which must be absent or empty)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise ValueError(f"{out_dir} is not empty: evidence is written to an empty folder")
    now = utcnow()
    with engine.begin() as conn:
        hold = conn.execute(sa.select(legal_holds).where(legal_holds.c.id == hold_id)).first()
        if hold is None:
            raise ApiError(404, f"no hold {hold_id}")
        if hold.released_at is not None:
            raise ApiError(409, f"hold {hold_id} was released; only held reads are exported")
        held = sa.select(legal_hold_reads.c.read_id).where(legal_hold_reads.c.hold_id == hold_id)
        rows = conn.execute(sa.select(reads).where(reads.c.read_id.in_(held))
                            .order_by(reads.c.captured_at, reads.c.read_id)).mappings().all()
        images = conn.execute(sa.select(read_images).where(read_images.c.read_id.in_(held))
                              .order_by(read_images.c.read_id, read_images.c.kind)).all()
        audit.append(conn, who, "export", {"hold": hold_id, "reads": len(rows), "images": len(images),
                                           "to": str(out_dir)},
                     purpose=EVIDENCE_PURPOSE, case_number=hold.case_number, result_count=len(rows))
    _private_dir(out_dir)
    _write(out_dir / "reads.jsonl", b"".join(
        json.dumps(read_doc(r, {}), sort_keys=True, ensure_ascii=False).encode() + b"\n" for r in rows))
    for img in images:
        _write(out_dir / "images" / f"{img.read_id}-{img.kind}.jpg", img.jpeg)
    custody = {"case_number": hold.case_number,
               "hold": {"id": hold.id, "placed_by": hold.placed_by, "placed_at": iso(hold.placed_at),
                        "reason": hold.reason},
               "exported_by": {"username": who.username, "agency": who.agency}, "exported_at": iso(now),
               "source": "ALPR central store", "read_count": len(rows), "image_count": len(images),
               "signing_public_key": keys.signing_public_b64, "transfers": []}
    _write(out_dir / "custody.json", json.dumps(custody, indent=2, sort_keys=True).encode() + b"\n")
    _write(out_dir / "chain-of-custody.txt", _custody_text(custody).encode())
    files = sorted(p for p in out_dir.rglob("*") if p.is_file())
    manifest = {"format": FORMAT, "case_number": hold.case_number, "hold_id": hold.id, "created_at": iso(now),
                "created_by": who.username, "signing_public_key": keys.signing_public_b64,
                "files": [{"path": p.relative_to(out_dir).as_posix(), "bytes": p.stat().st_size,
                           "sha256": _sha256(p)} for p in files]}
    body = json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n"
    _write(out_dir / MANIFEST, body)
    _write(out_dir / SIGNATURE, keys.sign(body).encode() + b"\n")
    return {"dir": str(out_dir), "case_number": hold.case_number, "hold_id": hold.id, "reads": len(rows),
            "images": len(images), "files": len(files) + 2,
            "manifest_sha256": hashlib.sha256(body).hexdigest()}


def verify(folder: Path, public_key: Ed25519PublicKey) -> dict[str, Any]:
    """Check a bundle; `problems` lists every difference found (empty when intact)."""
    folder = Path(folder)
    problems: list[str] = []
    try:
        body = (folder / MANIFEST).read_bytes()
        signature = base64.b64decode((folder / SIGNATURE).read_text().strip(), validate=True)
    except (OSError, ValueError) as exc:
        return {"ok": False, "problems": [f"manifest or signature unreadable: {exc}"]}
    try:
        public_key.verify(signature, body)
    except InvalidSignature:
        problems.append("manifest.json: signature does not verify with the central signing key "
                        "(the manifest was changed, or signed by another key)")
    try:
        manifest = json.loads(body)
        listed = {f["path"]: f for f in manifest["files"]}
    except (ValueError, KeyError, TypeError):
        return {"ok": False, "problems": problems + ["manifest.json: not a manifest"]}
    for rel, f in sorted(listed.items()):
        path = folder / rel
        if not path.is_file():
            problems.append(f"{rel}: missing")
        elif path.stat().st_size != f["bytes"] or _sha256(path) != f["sha256"]:
            problems.append(f"{rel}: changed (SHA-256 differs from the manifest)")
    present = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    for extra in sorted(present - set(listed) - {MANIFEST, SIGNATURE}):
        problems.append(f"{extra}: not in the manifest (added)")
    return {"ok": not problems, "problems": problems, "case_number": manifest.get("case_number"),
            "hold_id": manifest.get("hold_id"), "files": len(listed)}
