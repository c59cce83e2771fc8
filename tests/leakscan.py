"""The leak scan: every national id of a source, searched for in everything a run left behind.

Compressed containers hide ids from a byte search (an LZ4-compressed Arrow file shows a few in
a hundred), so each file is searched as bytes and also as what it decodes to: Parquet and Arrow
IPC (file or stream, whatever their buffer compression) read with pyarrow, and ZSTD / LZ4 /
gzip frames decompressed. Written without the package's code, so a bug there cannot hide here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

PARQUET = b"PAR1"
ARROW_FILE = b"ARROW1"
ARROW_STREAM = b"\xff\xff\xff\xff"
FRAMES = {b"\x28\xb5\x2f\xfd": "zstd", b"\x04\x22\x4d\x18": "lz4", b"\x1f\x8b": "gzip"}
_DIGIT_RUN = re.compile(rb"\d{6,}")


def ids_in_source(source: Path) -> set[str]:
    """The source's `pasient_fnr` values of six or more characters (valid or not)."""
    values = ds.dataset(source, format="parquet", partitioning="hive").to_table(columns=["pasient_fnr"])
    return {v for v in values.column(0).to_pylist() if v and len(v) >= 6}


def table_text(table: pa.Table) -> bytes:
    parts = []
    for column in table.columns:
        while pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
            column = column.combine_chunks().flatten() if isinstance(column, pa.ChunkedArray) else column.flatten()
        parts.append(" ".join(str(v) for v in column.to_pylist()))
    return "\n".join(parts).encode("utf-8")


def decoded(data: bytes) -> Iterator[bytes]:
    """The bytes themselves, then whatever they decode to (recursively)."""
    yield data
    inner: bytes | None = None
    try:
        if data[:4] == PARQUET:
            inner = table_text(pq.read_table(pa.BufferReader(data)))
        elif data[:6] == ARROW_FILE:
            inner = table_text(ipc.open_file(pa.BufferReader(data)).read_all())
        elif data[:4] == ARROW_STREAM:
            inner = table_text(ipc.open_stream(pa.BufferReader(data)).read_all())
        else:
            for magic, codec in FRAMES.items():
                if data.startswith(magic):
                    inner = pa.CompressedInputStream(pa.BufferReader(data), codec).read()
                    break
    except (pa.ArrowException, OSError, ValueError):
        inner = None  # not what its first bytes suggest: the byte search above still ran
    if inner is not None:
        yield from decoded(inner)


def digit_runs(text: bytes) -> set[str]:
    """Every run of six or more digits, and every 11-digit window of a longer run."""
    out = set()
    for match in _DIGIT_RUN.finditer(text):
        run = match.group().decode()
        out.add(run)
        out.update(run[i : i + 11] for i in range(len(run) - 10))
    return out


def leaked(ids: set[str], roots: Iterable[Path], texts: Iterable[str] = ()) -> set[str]:
    """The ids found in any file under `roots` (decoded as above) or in `texts` (printed output)."""
    found = set()
    for text in texts:
        found |= digit_runs(text.encode("utf-8")) & ids
    for root in roots:
        for path in root.rglob("*") if root.exists() else ():
            if path.is_file() and not path.is_symlink():
                for layer in decoded(path.read_bytes()):
                    found |= digit_runs(layer) & ids
    return found


def plaintext_tables(root: Path) -> list[Path]:
    """Files under `root` that are Parquet or Arrow IPC in the clear (by their magic bytes)."""
    out = []
    for path in root.rglob("*") if root.exists() else ():
        if path.is_file():
            with path.open("rb") as handle:
                head = handle.read(6)
            if head[:4] in (PARQUET, ARROW_STREAM) or head == ARROW_FILE:
                out.append(path)
    return out


def at_rest_problems(home: Path) -> list[str]:
    """What `home` (a DAGSTER_HOME) holds against the rule "nothing person-level at rest": tables
    in the clear anywhere, and anything under its staging folder readable by group or others."""
    problems = [f"a table in the clear: {path}" for path in plaintext_tables(home)]
    staging = home / "staging"
    for path in [staging, *staging.rglob("*")] if staging.exists() else []:
        if path.stat().st_mode & 0o077:
            problems.append(f"readable by group or others: {path} ({oct(path.stat().st_mode & 0o777)})")
    return problems
