"""Crypt4GH encryption and decryption through the GA4GH reference package, streamed.

The library reads and writes 64 KiB segments, so memory does not grow with file size. Its
logger prints the session key at DEBUG level, and logs an ERROR for every header packet that is
for another recipient: it is silenced here (our own errors say what failed), whatever the
caller's logging configuration says.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Protocol

from crypt4gh import lib as c4gh_lib
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

logging.getLogger("crypt4gh").setLevel(logging.CRITICAL)


class Readable(Protocol):
    def readinto(self, buffer: bytearray, /) -> int | None: ...


class _HashingReader:
    """A file wrapper that hashes what is read through it (plaintext SHA-256 in the same pass)."""

    def __init__(self, raw: Readable) -> None:
        self._raw = raw
        self.sha256 = hashlib.sha256()
        self.bytes = 0

    def readinto(self, buffer: bytearray) -> int:
        n = self._raw.readinto(buffer)
        if n:
            self.sha256.update(memoryview(buffer)[:n])
            self.bytes += n
        return n or 0


def ephemeral_writer_key() -> bytes:
    """A fresh X25519 private key for one delivery's headers (never stored)."""
    return X25519PrivateKey.generate().private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())


def encrypt_file(plain: Readable, encrypted: Path, recipient_keys: list[bytes], writer_key: bytes) -> str:
    """Encrypt the stream `plain` to every recipient; returns the plaintext's SHA-256."""
    keys = [(0, writer_key, pk) for pk in recipient_keys]
    with encrypted.open("wb") as outfile:
        reader = _HashingReader(plain)
        c4gh_lib.encrypt(keys, reader, outfile)
        outfile.flush()
    return reader.sha256.hexdigest()


def decrypt_file(encrypted: Path, plain: Path, secret_key: bytes) -> None:
    """Decrypt into a new file readable by its owner only (never over an existing one)."""
    descriptor = os.open(plain, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with encrypted.open("rb") as infile, os.fdopen(descriptor, "wb") as outfile:
        c4gh_lib.decrypt([(0, secret_key, None)], infile, outfile)
