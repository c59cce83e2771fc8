"""Claims staged between steps: sealed files (sealed.py) in one run's staging folder.

Staging is read back once or twice on the same machine and never delivered, so the format that
costs least to write and read wins: Arrow's own, with LZ4-compressed buffers, gathered into
batches of BATCH_ROWS (a scan keeps a few per cent of each batch, and readers do better with few
large batches than with many small ones). The extract and the statistics are Parquet, as
delivered. Every file is sealed with the run's data key (what that costs: bench/RESULTS.md).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from kuhr_pipeline import settings
from kuhr_pipeline.sealed import CHUNK, SealedReader, SealedWriter, private_folder, run_data_key, write_private
from kuhr_pipeline.source.scan import BATCH_ROWS, parquet_leaves

_OPTIONS = ipc.IpcWriteOptions(compression="lz4")
SPILL_CHUNK = 64 * 1024  # spill files are written 256 at a time: small chunks keep that bounded


def remove_staging(folder: Path) -> None:
    """Staging is removed whole when its run ends, delivered, failed or canceled: even sealed,
    nothing person-level outlives its run."""
    shutil.rmtree(folder, ignore_errors=True)


def remove_stale_staging(own: Path) -> list[str]:
    """Remove what other runs of this application left (runs killed before their clean-up) and
    return their names. Only called while this run holds its application (runs never overlap)."""
    if not own.parent.is_dir():
        return []
    stale = [folder for folder in own.parent.iterdir() if folder.name != own.name]
    for folder in stale:
        if folder.is_dir():
            remove_staging(folder)
        else:
            folder.unlink(missing_ok=True)
    return [folder.name for folder in stale]


def clean_staging(application_ids: list[str], is_free: Callable[[str], AbstractContextManager[bool]]) -> list[str]:
    """Remove the staging of each application whose lock `is_free` (no run of it in progress);
    returns a line for each application, removed or skipped."""
    lines = []
    for application_id in application_ids:
        folder = settings.staging_dir(application_id)
        with is_free(application_id) as free:
            if not free:
                lines.append(f"{application_id}: skipped, a delivery of it is running")
                continue
            if not folder.exists():
                lines.append(f"{application_id}: nothing to remove")
                continue
            remove_staging(folder)
        lines.append(f"{application_id}: staging removed")
    return lines


@dataclass(frozen=True)
class Staging:
    """One run's staging folder and the run's data key, which seals every file written in it.

    Never pickled into an asset's output (outputs hold paths): each step makes its own from the
    master key and the run id."""

    folder: Path
    key: bytes = field(repr=False)

    @classmethod
    def for_run(cls, folder: Path, master_key: bytes, run_id: str) -> Staging:
        return cls(folder, run_data_key(master_key, run_id))

    def sub(self, name: str) -> Staging:
        """A folder inside this one (made on first use), sealed with the same key."""
        return Staging(self.folder / name, self.key)

    def make(self) -> Path:
        """The folder, made owner-only if it is not there yet."""
        return private_folder(self.folder)

    def path(self, name: str) -> Path:
        """A file's path in the folder (made if need be)."""
        return self.make() / name

    def write_small(self, name: str, data: bytes) -> Path:
        """A small file of counts (reports), owner-only, whole or not at all; not sealed."""
        path = self.path(name)
        write_private(path, data)
        return path

    def open_plain(self, path: Path) -> SealedReader:
        """The plaintext of a sealed file, as a seekable binary stream."""
        return SealedReader(path, self.key)

    # Arrow IPC: the cohort's claims and the statistics' spill files.

    def arrow_writer(self, path: Path, schema: pa.Schema, buffered: bool = True) -> StagedWriter:
        return StagedWriter(SealedWriter(path, self.key, chunk=CHUNK if buffered else SPILL_CHUNK), schema, buffered)

    def batches(self, path: Path, columns: Sequence[str] | None = None) -> Iterator[pa.RecordBatch]:
        """The staged file's batches (only `columns`, when given), one at a time."""
        with self.open_plain(path) as plain:
            reader = ipc.open_file(plain)
            for index in range(reader.num_record_batches):
                batch = reader.get_batch(index)
                yield batch.select(list(columns)) if columns is not None else batch

    def schema(self, path: Path) -> pa.Schema:
        with self.open_plain(path) as plain:
            return ipc.open_file(plain).schema

    def rows(self, path: Path) -> int:
        """Rows in the file, from its batches' headers (no data is decompressed)."""
        with self.open_plain(path) as plain:
            return ipc.open_file(plain).count_rows()

    def read(self, path: Path, columns: Sequence[str] | None = None) -> pa.Table:
        """The whole staged file as a table (small files and tests)."""
        schema = self.schema(path)
        if columns is not None:
            schema = pa.schema([schema.field(c) for c in columns])
        return pa.Table.from_batches(list(self.batches(path, columns)), schema)

    # Parquet: the extract and the statistics table.

    def parquet_writer(
        self, path: Path, schema: pa.Schema, statistics: Collection[str] | None = None
    ) -> SealedParquetWriter:
        """`statistics`: the columns that get Parquet statistics (None: all)."""
        return SealedParquetWriter(SealedWriter(path, self.key), schema, statistics)

    def write_parquet(self, path: Path, table: pa.Table) -> None:
        writer = self.parquet_writer(path, table.schema)
        try:
            writer.write_table(table)
        finally:
            writer.close()

    @contextmanager
    def parquet_file(self, path: Path, read_dictionary: Sequence[str] | None = None) -> Iterator[pq.ParquetFile]:
        with self.open_plain(path) as plain:
            yield pq.ParquetFile(plain, read_dictionary=read_dictionary)

    def read_parquet(self, path: Path) -> pa.Table:
        with self.parquet_file(path) as file:
            return file.read()

    def parquet_schema(self, path: Path) -> pa.Schema:
        with self.parquet_file(path) as file:
            return file.schema_arrow


class StagedWriter:
    """Writes tables of one schema to a sealed Arrow file; buffered, in batches of BATCH_ROWS
    rows (unbuffered: as they come, for the 256 spill files that are open at once).

    A buffered writer compresses and seals each full batch on a thread of its own while the
    caller makes the next one (pass 2: half a core was idle, bench/README.md, eleventh session);
    one batch at most is in flight, and its error is raised by the next `write` or `close`."""

    def __init__(self, sink: SealedWriter, schema: pa.Schema, buffered: bool = True) -> None:
        self._sink = sink
        self._writer = ipc.new_file(sink, schema, options=_OPTIONS)
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._in_flight: Future[None] | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kuhr-staging") if buffered else None

    def write(self, table: pa.Table | pa.RecordBatch) -> None:
        if self._thread is None:
            self._writer.write(table)
            return
        self._pending.append(table if isinstance(table, pa.Table) else pa.Table.from_batches([table]))
        self._pending_rows += table.num_rows
        if self._pending_rows >= BATCH_ROWS:
            pending = pa.concat_tables(self._pending)
            end = pending.num_rows - pending.num_rows % BATCH_ROWS
            rest = pending.slice(end)
            self._pending, self._pending_rows = ([rest] if rest.num_rows else []), rest.num_rows
            self._wait()
            self._in_flight = self._thread.submit(self._write_batches, pending.slice(0, end))

    def close(self) -> None:
        try:
            self._wait()
            if self._pending:
                self._write_batches(pa.concat_tables(self._pending))
                self._pending, self._pending_rows = [], 0
            self._writer.close()
        finally:
            if self._thread is not None:
                self._thread.shutdown(wait=True)
            self._sink.close()

    def _wait(self) -> None:
        if self._in_flight is not None:
            in_flight, self._in_flight = self._in_flight, None
            in_flight.result()

    def _write_batches(self, table: pa.Table) -> None:
        """Write batches of exactly BATCH_ROWS rows (the last one of the file may be shorter): the
        file's batches depend only on its rows, not on how they were handed in, so claims gathered
        from many steps make the same file as one step's (and the same delivered bytes)."""
        for start in range(0, table.num_rows, BATCH_ROWS):
            self._writer.write_table(table.slice(start, BATCH_ROWS).combine_chunks())


DICTIONARY_PAGE_LIMIT = 8 << 20


class SealedParquetWriter:
    """A Parquet writer (zstd, as delivered) into a sealed file.

    A column's dictionary may grow to DICTIONARY_PAGE_LIMIT (Arrow's default: 1 MiB) before the
    writer gives up on it for the rest of the row group: a cohort's pseudonyms (32 characters
    each) outgrew 1 MiB at some 33 000 persons, and writing them plain after trying took twice the
    time and made the column four times the size (bench/README.md, eleventh session).

    With `statistics`, only those columns get minimum, maximum and null count per row group and
    page: statistics help a reader skip row groups only where a column's values cluster (the
    claims' time, in the order the source is read); elsewhere every row group spans nearly all
    values, and computing them (lists of codes above all) took a fifth to two fifths of the
    writer's time (bench/README.md, twelfth session)."""

    def __init__(self, sink: SealedWriter, schema: pa.Schema, statistics: Collection[str] | None = None) -> None:
        self._sink = sink
        with_statistics = True if statistics is None else [leaf for c in statistics for leaf in parquet_leaves(c)]
        self._writer = pq.ParquetWriter(
            sink,
            schema,
            compression="zstd",
            dictionary_pagesize_limit=DICTIONARY_PAGE_LIMIT,
            write_statistics=with_statistics,
        )

    def write_table(self, table: pa.Table) -> None:
        self._writer.write_table(table)

    def close(self) -> None:
        try:
            self._writer.close()
        finally:
            self._sink.close()
