"""File hashing in bounded memory."""

from __future__ import annotations

import hashlib
from pathlib import Path

CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fingerprint(public_key: bytes) -> str:
    """A key's fingerprint: SHA-256 of its raw bytes, hex (as shown in manifests and the audit log)."""
    return "SHA256:" + hashlib.sha256(public_key).hexdigest()
