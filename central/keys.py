"""The central store's own keys, made once by `alpr-central init` and kept in the home's keys/ folder.

- sealing key (X25519): units seal every read to its public half; only this store can open them.
- signing key (Ed25519): signs what flows down to units (hot lists now, updates and evidence later),
  so a unit can trust a file even if it came through a proxy or off a USB stick.

Private halves are PKCS#8 PEM files readable by the owner only. Public halves are handed to units at
enrolment as base64 of the raw 32 bytes, the form `wire.seal.load_sealing_public` accepts.
"""
from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from wire import seal

SEALING_FILE = "sealing.pem"
SIGNING_FILE = "signing.pem"


@dataclass(frozen=True)
class CentralKeys:
    sealing: X25519PrivateKey
    signing: Ed25519PrivateKey

    @property
    def sealing_public_b64(self) -> str:
        return seal.sealing_public_b64(self.sealing.public_key())

    @property
    def sealing_key_id(self) -> str:
        return seal.sealing_key_id(self.sealing.public_key())

    @property
    def signing_public_b64(self) -> str:
        raw = self.signing.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return base64.b64encode(raw).decode("ascii")

    def sign(self, data: bytes) -> str:
        """Base64 Ed25519 signature of `data` with the central signing key."""
        return base64.b64encode(self.signing.sign(data)).decode("ascii")


def _write_private(path: Path, key: X25519PrivateKey | Ed25519PrivateKey) -> None:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    # O_EXCL: never overwrite an existing key; a lost sealing key makes every buffered read unreadable.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)


def _read_private(path: Path):
    return serialization.load_pem_private_key(path.read_bytes(), password=None)


def ensure_keys(keydir: Path) -> tuple[CentralKeys, bool]:
    """Load the keys, making any that are missing. Returns (keys, made_any)."""
    keydir.mkdir(parents=True, exist_ok=True, mode=0o700)
    made = False
    for name, factory in ((SEALING_FILE, X25519PrivateKey.generate), (SIGNING_FILE, Ed25519PrivateKey.generate)):
        if not (keydir / name).exists():
            _write_private(keydir / name, factory())
            made = True
    return load_keys(keydir), made


def load_keys(keydir: Path) -> CentralKeys:
    sealing = _read_private(keydir / SEALING_FILE)
    signing = _read_private(keydir / SIGNING_FILE)
    if not isinstance(sealing, X25519PrivateKey) or not isinstance(signing, Ed25519PrivateKey):
        raise ValueError(f"keys in {keydir} are not X25519 (sealing) and Ed25519 (signing)")
    return CentralKeys(sealing=sealing, signing=signing)
