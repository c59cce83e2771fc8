"""Claims staged between steps: Arrow IPC files, written piece by piece and read back batch by batch.

Staging is read back once or twice on the same machine and never delivered, so the format that
costs least to write and read wins: Arrow's own, with LZ4-compressed buffers (1.6 M claims:
written in 0.16 s and read in 0.03 s; as LZ4 Parquet they took 0.48 s and 0.28 s). Pieces are
gathered into batches of BATCH_ROWS: a scan keeps a few per cent of each batch, and readers do
better with few large batches than with many small ones.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc

from kuhr_pipeline.source.scan import BATCH_ROWS

_OPTIONS = ipc.IpcWriteOptions(compression="lz4")


def remove_staging(folder: Path) -> None:
    """Staging holds person-level rows in the clear: removed whole when its run ends, delivered,
    failed or canceled, so that nothing person-level stays outside the encrypted delivery."""
    shutil.rmtree(folder, ignore_errors=True)


def new_staged_file(path: Path, schema: pa.Schema) -> ipc.RecordBatchFileWriter:
    """A staged file written batch by batch as it comes (callers that gather rows use StagedWriter)."""
    return ipc.new_file(str(path), schema, options=_OPTIONS)


class StagedWriter:
    """Collects tables of one schema and writes them to `path` in batches of about BATCH_ROWS rows."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self._writer = new_staged_file(path, schema)
        self._pending: list[pa.Table] = []
        self._pending_rows = 0

    def write(self, table: pa.Table) -> None:
        self._pending.append(table)
        self._pending_rows += table.num_rows
        if self._pending_rows >= BATCH_ROWS:
            self._flush()

    def close(self) -> None:
        self._flush()
        self._writer.close()

    def _flush(self) -> None:
        if self._pending:
            self._writer.write_table(pa.concat_tables(self._pending).combine_chunks())
        self._pending, self._pending_rows = [], 0


def staged_batches(path: Path, columns: Sequence[str] | None = None) -> Iterator[pa.RecordBatch]:
    """The staged file's batches (only `columns`, when given), one at a time."""
    with pa.OSFile(str(path)) as source:
        reader = ipc.open_file(source)
        for index in range(reader.num_record_batches):
            batch = reader.get_batch(index)
            yield batch.select(list(columns)) if columns is not None else batch


def staged_schema(path: Path) -> pa.Schema:
    with pa.OSFile(str(path)) as source:
        return ipc.open_file(source).schema


def staged_rows(path: Path) -> int:
    """Rows in the file, from its batches' headers (no data is decompressed)."""
    with pa.OSFile(str(path)) as source:
        return ipc.open_file(source).count_rows()


def read_staged(path: Path, columns: Sequence[str] | None = None) -> pa.Table:
    """The whole staged file as a table (small files and tests)."""
    schema = staged_schema(path)
    if columns is not None:
        schema = pa.schema([schema.field(c) for c in columns])
    return pa.Table.from_batches(list(staged_batches(path, columns)), schema)
