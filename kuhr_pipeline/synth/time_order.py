"""A year in time order with bounded memory: an external merge sort.

Each slice of persons is made sorted by `behandlingstidspunkt` and spilled to an Arrow IPC file (a
plain copy: nothing to encode); once a year's slices are all spilled, they are merged a
window of time at a time into the year's Parquet file. Two slices being made, a batch read ahead
per run, one window and at most a row group waiting to be written are in memory at once, however
large the year, so a national year (some 80 M claims) needs no more memory than a bench year, where
sorting the whole year in memory needed one year's worth. Ties keep slice order,
then the order within a slice, exactly as one stable sort of the whole year would, and the row
groups are those a default writer makes of the whole year, so the file is the same either way.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from kuhr_pipeline.synth.parquet_settings import parquet_options

TIME = "behandlingstidspunkt"
MERGE_ROWS = 1 << 19  # about the claims merged at a time
ROW_GROUP_ROWS = 1024 * 1024  # what pyarrow's writer makes by default
SPILL_BATCH_ROWS = 1 << 16  # how far a run is read ahead


def spill_run(table: pa.Table, path: Path) -> None:
    """Write a slice already sorted by time (`make_year(by_time=True)`) to an Arrow IPC file for
    `merge_year`."""
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=SPILL_BATCH_ROWS)


def merge_year(runs: Sequence[Path], out: Path, year: int, rows: int) -> None:
    """Merge the spilled, sorted `runs` (in slice order; `rows` claims in all) into one Parquet
    file sorted by time, then delete the runs."""
    readers = [_Run(path) for path in runs]
    try:
        schema = readers[0].schema
        with pq.ParquetWriter(out, schema, **parquet_options(schema)) as writer:
            row_groups = _RowGroups(writer)
            for end in _window_ends(year, rows):
                pieces = [reader.until(end) for reader in readers]
                row_groups.add(pa.concat_tables(pieces).sort_by(TIME))
            row_groups.flush()
    finally:
        for reader in readers:
            reader.close()
    for path in runs:
        path.unlink()


def _window_ends(year: int, rows: int) -> list[int | None]:
    """Ends (epoch ms, exclusive) of windows of the year holding about MERGE_ROWS claims each when
    claims are spread evenly; the last is open (None) so that no claim is ever left behind."""
    start = int(datetime(year, 1, 1, tzinfo=UTC).timestamp() * 1000)  # as Arrow stores naive times
    stop = int(datetime(year + 1, 1, 1, tzinfo=UTC).timestamp() * 1000)
    windows = max(1, math.ceil(rows / MERGE_ROWS))
    width = (stop - start) / windows
    return [start + round(width * i) for i in range(1, windows)] + [None]


class _Run:
    """One spilled slice, read forward in time a batch at a time."""

    def __init__(self, path: Path) -> None:
        self._file = pa.OSFile(str(path), "rb")
        self._reader = pa.ipc.open_file(self._file)
        self.schema = self._reader.schema
        self._next_batch = 0
        self._held = self.schema.empty_table()

    def until(self, end: int | None) -> pa.Table:
        """The rows not yet taken whose time is before `end` (all of them if None)."""
        while self._next_batch < self._reader.num_record_batches and (end is None or self._last_time() < end):
            batch = self._reader.get_batch(self._next_batch)
            self._held = pa.concat_tables([self._held, pa.Table.from_batches([batch])])
            self._next_batch += 1
        if end is None:
            taken, self._held = self._held, self.schema.empty_table()
            return taken
        before = pc.sum(pc.less(self._held.column(TIME), pa.scalar(end, pa.timestamp("ms")))).as_py() or 0
        taken, self._held = self._held.slice(0, before), self._held.slice(before)
        return taken

    def _last_time(self) -> int:
        if self._held.num_rows == 0:
            return -(2**63)
        return int(self._held.column(TIME)[-1].value)

    def close(self) -> None:
        self._file.close()


class _RowGroups:
    """Writes rows in row groups of exactly ROW_GROUP_ROWS (the last one the rest), however the
    windows fall, so that the year's file has the row groups a default writer makes."""

    def __init__(self, writer: pq.ParquetWriter) -> None:
        self._writer = writer
        self._pending: list[pa.Table] = []
        self._rows = 0

    def add(self, rows: pa.Table) -> None:
        self._pending.append(rows)
        self._rows += rows.num_rows
        while self._rows >= ROW_GROUP_ROWS:
            whole = pa.concat_tables(self._pending)
            self._writer.write_table(whole.slice(0, ROW_GROUP_ROWS), row_group_size=ROW_GROUP_ROWS)
            rest = whole.slice(ROW_GROUP_ROWS)
            self._pending, self._rows = [rest], rest.num_rows

    def flush(self) -> None:
        if self._rows:
            self._writer.write_table(pa.concat_tables(self._pending), row_group_size=ROW_GROUP_ROWS)
        self._pending, self._rows = [], 0
