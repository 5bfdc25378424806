"""Ed25519 keys: the unit's identity key (signs its requests) and the release key (signs updates).

The helpers name the key kind because a unit also holds an X25519 key, the central store's sealing key,
whose helpers live with the sealing code (`wire.seal`). Public keys travel as base64 of the raw 32
bytes (enrolment, the config) or as PEM (`release.pub`); private keys are unencrypted PKCS#8 PEM files,
0600, never overwritten.
"""
from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from unit.layout import write_file


def ed25519_raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def ed25519_key_id(key: Ed25519PublicKey) -> str:
    """Short fingerprint of an Ed25519 public key, shown on both sides so a mismatch can be named."""
    return hashlib.sha256(ed25519_raw_public(key)).hexdigest()[:16]


def ed25519_public_b64(key: Ed25519PublicKey) -> str:
    return base64.b64encode(ed25519_raw_public(key)).decode("ascii")


def ed25519_public_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_ed25519_public(data: str | bytes) -> Ed25519PublicKey:
    """An Ed25519 public key from PEM (SubjectPublicKeyInfo) or base64 of the raw 32 bytes.
    A private key is refused: a unit must never hold the release key's private half."""
    if isinstance(data, str):
        data = data.encode("ascii", "replace")
    data = data.strip()
    if b"PRIVATE KEY" in data:
        raise ValueError("this is a PRIVATE key; give the public half (release.pub), never the private one")
    if data.startswith(b"-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(data)
        except ValueError as exc:
            raise ValueError(f"not a PEM public key ({exc})") from None
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError(f"PEM key is {type(key).__name__}, not Ed25519")
        return key
    try:
        raw = base64.b64decode(data, validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        raise ValueError("not an Ed25519 public key (PEM, or base64 of the raw 32 bytes)") from None


def load_ed25519_private(path: str | Path) -> Ed25519PrivateKey:
    """The private key in a PEM file. OSError when the file cannot be read; ValueError, naming the
    file, when it is not an unencrypted Ed25519 private key."""
    data = Path(path).read_bytes()
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path}: not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path}: not an Ed25519 private key")
    return key


def save_ed25519_private(path: str | Path, key: Ed25519PrivateKey) -> None:
    """Write `key` as PKCS#8 PEM, 0600, atomically; FileExistsError if `path` exists (a key that others
    trust is never overwritten by accident)."""
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    write_file(Path(path), pem, 0o600, exclusive=True)


def make_release_key(path: str | Path) -> tuple[Path, Path, str]:
    """A new release key pair: the private key at `path` (0600, never overwritten) and `<name>.pub` (PEM).
    Returns (private path, public path, key id)."""
    path = Path(path)
    key = Ed25519PrivateKey.generate()
    try:
        save_ed25519_private(path, key)
    except FileExistsError:
        raise ValueError(f"{path} exists; a release key is never overwritten (units trust it)") from None
    pub = path.with_suffix(".pub")
    pub.write_bytes(ed25519_public_pem(key.public_key()))
    return path, pub, ed25519_key_id(key.public_key())
