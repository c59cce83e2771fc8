"""Files sealed at rest: what a run keeps between its steps, encrypted with the run's data key.

Staging holds person-level rows (pseudonymised, but with every approved variable, and whatever a
data manager typed into free text). Sealed, a copy of the staging folder, a backup of the shared
file system or a run killed before its clean-up discloses nothing.

The data key is never written anywhere: it is derived (HKDF-SHA256) from the pseudonym master key
and the run id, so every process of one run (the steps of a multiprocess or Celery run) derives
the same key, and no other run can read the files.

The format is a STREAM construction over AES-256-GCM: a header (magic, chunk size, a random
nonce prefix), then chunks of CHUNK plaintext bytes, each with its tag; the last chunk is marked
in its associated data, so a truncated, reordered or spliced file fails to open. Chunks of a fixed
size give random access, which Arrow's file format and Parquet need (they read their footer
first). pyarrow reads and writes through these objects as through any Python file.
"""

from __future__ import annotations

import errno
import io
import os
import secrets
import struct
import threading
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from kuhr_pipeline.errors import StagingFull
from kuhr_pipeline.stopping import STOPPING

MAGIC = b"KUHRSEAL"
CHUNK = 1 << 20
_HEADER = struct.Struct(">8sI8s")  # magic, chunk size, nonce prefix
_TAG = 16
FILE_MODE = 0o600
FOLDER_MODE = 0o700


class SealBroken(Exception):
    """A sealed file was changed, cut short or sealed with another run's key (not a user error:
    staging belongs to the run that wrote it)."""


def wait_if_stopping() -> None:
    """After a stop signal the process is ending (stopping.py): the run's thread waits here for
    the end instead of writing staging that would only be debris (or failing, which would
    record the canceled run as failed)."""
    if STOPPING.is_set() and threading.current_thread() is not threading.main_thread():
        threading.Event().wait()  # never set: os._exit ends the process


def run_data_key(master_key: bytes, run_id: str) -> bytes:
    """The run's data key: the same in every process of the run, useless for any other run."""
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"kuhr-pipeline staging v1", info=run_id.encode("utf-8")
    ).derive(master_key)


def private_folder(path: Path) -> Path:
    """Create `path`, and each missing parent, readable by its owner only (folders that exist
    already keep their mode, except `path` itself)."""
    wait_if_stopping()
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for folder in reversed(missing):
        folder.mkdir(mode=FOLDER_MODE, exist_ok=True)
        os.chmod(folder, FOLDER_MODE)  # mkdir's mode passes through the umask
    os.chmod(path, FOLDER_MODE)
    return path


def write_private(path: Path, data: bytes) -> None:
    """Write a small file (counts, reports) readable by its owner only, whole or not at all."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    descriptor = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
    tmp.replace(path)


def _aad(header: bytes, index: int, last: bool) -> bytes:
    return header + struct.pack(">QB", index, last)


def _nonce(prefix: bytes, index: int) -> bytes:
    return prefix + struct.pack(">I", index)


class SealedWriter(io.RawIOBase):
    """A write-only file that seals what is written to it, chunk by chunk (closing seals the last)."""

    def __init__(self, path: Path, key: bytes, chunk: int = CHUNK) -> None:
        super().__init__()
        self._chunk = chunk
        self._aead = AESGCM(key)
        self._prefix = secrets.token_bytes(8)
        self._header = _HEADER.pack(MAGIC, chunk, self._prefix)
        wait_if_stopping()
        self._path = path
        self._file = os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE), "wb")
        self._file.write(self._header)
        self._pending = bytearray()
        self._index = 0
        self._position = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        self._pending += data
        n = len(memoryview(data).cast("B"))
        self._position += n
        while len(self._pending) > self._chunk:  # the last chunk is sealed by close(), marked as the last
            self._seal(bytes(self._pending[: self._chunk]), last=False)
            del self._pending[: self._chunk]
        return n

    def tell(self) -> int:
        return self._position

    def close(self) -> None:
        if not self.closed:
            try:
                self._seal(bytes(self._pending), last=True)
            finally:
                self._file.close()
                super().close()

    def _seal(self, plain: bytes, last: bool) -> None:
        aad = _aad(self._header, self._index, last)
        try:
            self._file.write(self._aead.encrypt(_nonce(self._prefix, self._index), plain, aad))
            if last:
                self._file.flush()
        except OSError as error:
            if error.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StagingFull.single(
                    str(self._path),
                    "DAGSTER_HOME",
                    "no space left for the run's staging",
                    "free space, or point DAGSTER_HOME at a larger disk; nothing was delivered",
                ) from None
            raise
        self._index += 1


class SealedReader(io.RawIOBase):
    """A read-only, seekable view of a sealed file's plaintext (one chunk decrypted at a time)."""

    def __init__(self, path: Path, key: bytes) -> None:
        super().__init__()
        self._path = path
        self._aead = AESGCM(key)
        self._file = path.open("rb")
        self._header = self._file.read(_HEADER.size)
        magic, chunk, self._prefix = (
            _HEADER.unpack(self._header) if len(self._header) == _HEADER.size else (b"", 0, b"")
        )
        if magic != MAGIC or chunk <= 0:
            self._file.close()
            raise SealBroken(f"{path}: not a sealed file")
        self._chunk = chunk
        body = os.fstat(self._file.fileno()).st_size - _HEADER.size
        self._chunks = max(1, -(-body // (chunk + _TAG)))
        self._size = body - self._chunks * _TAG
        if self._size < 0:
            self._file.close()
            raise SealBroken(f"{path}: cut short")
        self._position = 0
        self._cached: tuple[int, bytes] = (-1, b"")

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        target = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(target) and self._position < self._size:
            index, offset = divmod(self._position, self._chunk)
            plain = memoryview(self._open_chunk(index))
            n = min(len(target) - filled, len(plain) - offset)
            target[filled : filled + n] = plain[offset : offset + n]
            filled += n
            self._position += n
        return filled

    def close(self) -> None:
        if not self.closed:
            self._file.close()
            super().close()

    def _open_chunk(self, index: int) -> bytes:
        if self._cached[0] != index:
            self._file.seek(_HEADER.size + index * (self._chunk + _TAG))
            sealed = self._file.read(self._chunk + _TAG)
            last = index == self._chunks - 1
            try:
                plain = self._aead.decrypt(_nonce(self._prefix, index), sealed, _aad(self._header, index, last))
            except InvalidTag:
                raise SealBroken(
                    f"{self._path}: chunk {index} does not open (changed, cut short or another run's)"
                ) from None
            self._cached = (index, plain)
        return self._cached[1]
