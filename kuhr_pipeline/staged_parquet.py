"""Parquet written piece by piece into staging (never delivered as such).

Pieces are buffered into full row groups: a scan keeps a few per cent of each batch, and writing
every small piece as its own row group took over a third of pass 2's time. LZ4, not zstd:
staging is read back once or twice on the same machine, so speed matters more than size.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from kuhr_pipeline.source.scan import BATCH_ROWS

ROW_GROUP_ROWS = BATCH_ROWS


class StagedParquetWriter:
    """Collects tables of one schema and writes them to `path` in row groups of ROW_GROUP_ROWS."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self._writer = pq.ParquetWriter(path, schema, compression="lz4")
        self._pending: list[pa.Table] = []
        self._pending_rows = 0

    def write(self, table: pa.Table) -> None:
        self._pending.append(table)
        self._pending_rows += table.num_rows
        if self._pending_rows >= ROW_GROUP_ROWS:
            self._flush()

    def close(self) -> None:
        self._flush()
        self._writer.close()

    def _flush(self) -> None:
        if self._pending:
            self._writer.write_table(pa.concat_tables(self._pending), row_group_size=ROW_GROUP_ROWS)
        self._pending, self._pending_rows = [], 0
