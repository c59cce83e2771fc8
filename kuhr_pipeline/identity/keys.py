"""Reading key files. Messages name the file and the problem, never a byte of the key."""

from __future__ import annotations

import binascii
import functools
import os
import stat
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kuhr_pipeline import settings
from kuhr_pipeline.errors import KeyFileError

MIN_MASTER_KEY_BYTES = 32
MAX_KEY_FILE_BYTES = 64 * 1024


def _key_path(path: str | Path | None, variable: str) -> Path:
    if not path:
        raise KeyFileError.single(
            f"${variable}",
            variable,
            "is not set",
            f"export {variable}=/path/to/key (kuhr-pipeline keys init writes one)",
        )
    return Path(path)


def read_key_bytes(path: Path, variable: str, secret: bool = True) -> bytes:
    """A key file's bytes: a regular file (never a FIFO or a device, which could hang or never
    end), read with a size bound; for a secret key, a warning when group or others may read it."""
    try:
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError
        if not stat.S_ISREG(info.st_mode):
            raise KeyFileError.single(
                str(path), variable, "is not a regular file (a pipe, a device or a socket)", "point at the key file"
            )
        with path.open("rb") as file:
            data = file.read(MAX_KEY_FILE_BYTES + 1)
        if len(data) > MAX_KEY_FILE_BYTES:
            raise KeyFileError.single(str(path), variable, "is far too large to be a key file")
        if secret and info.st_mode & 0o077:
            _warn_open_to_others(str(path), variable, info.st_mode & 0o777)
        return data
    except FileNotFoundError:
        raise KeyFileError.single(
            str(path), variable, "no such key file", "point the variable at the key, or run kuhr-pipeline keys init"
        ) from None
    except IsADirectoryError:
        raise KeyFileError.single(str(path), variable, "is a folder, not a key file") from None
    except PermissionError:
        raise KeyFileError.single(
            str(path), variable, "cannot be read (permission denied)", "run as the key's owner"
        ) from None
    except OSError as exc:
        raise KeyFileError.single(str(path), variable, f"cannot be read ({exc.strerror})") from None


@functools.cache
def _warn_open_to_others(path: str, variable: str, mode: int) -> None:
    """Said once per file and process (a key is read by several steps)."""
    print(
        f"warning: {path}: {variable}: mode {mode:o} lets group or others read the key (fix: chmod 600 {path})",
        file=sys.stderr,
    )


def read_master_key(path: str | Path | None, variable: str = settings.PSEUDONYM_KEY_VARIABLE) -> bytes:
    """The pseudonym master key: ≥ 32 random bytes written as hex, whitespace ignored."""
    key_path = _key_path(path, variable)
    raw = read_key_bytes(key_path, variable)
    text = b"".join(raw.split())
    try:
        key = binascii.unhexlify(text)
    except (binascii.Error, ValueError):
        raise KeyFileError.single(
            str(key_path), variable, "is not hexadecimal text", "write the key as hex digits (kuhr-pipeline keys init)"
        ) from None
    if len(key) < MIN_MASTER_KEY_BYTES:
        raise KeyFileError.single(
            str(key_path),
            variable,
            f"holds {len(key)} bytes; at least {MIN_MASTER_KEY_BYTES} are required",
            "write a new key with kuhr-pipeline keys init",
        )
    return key


def read_signing_key(path: str | Path | None, variable: str = settings.SIGNING_KEY_VARIABLE) -> Ed25519PrivateKey:
    """The Ed25519 signing key, PEM (PKCS8), unencrypted."""
    key_path = _key_path(path, variable)
    raw = read_key_bytes(key_path, variable)
    try:
        key = serialization.load_pem_private_key(raw, password=None)
    except (ValueError, TypeError):
        raise KeyFileError.single(
            str(key_path),
            variable,
            "is not an unencrypted PEM (PKCS8) private key",
            "write one with kuhr-pipeline keys init",
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError.single(str(key_path), variable, "is not an Ed25519 key")
    return key


def write_secret_file(path: Path, data: bytes) -> None:
    """Create a file readable by its owner only; refuses to overwrite."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
