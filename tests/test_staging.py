"""Staged claims: sealed Arrow files whose batches depend only on their rows."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from kuhr_pipeline.source.scan import BATCH_ROWS
from tests.helpers import staging_in


def _staged_batches(folder: Path, pieces: list[int]) -> list[int]:
    staging = staging_in(folder)
    schema = pa.schema([("n", pa.int64())])
    writer = staging.arrow_writer(staging.path("claims.arrow"), schema)
    start = 0
    for size in pieces:
        writer.write(pa.table({"n": pa.array(range(start, start + size), pa.int64())}, schema=schema))
        start += size
    writer.close()
    batches = list(staging.batches(staging.path("claims.arrow")))
    assert pa.Table.from_batches(batches).column("n").to_pylist() == list(range(start))
    return [b.num_rows for b in batches]


def test_the_same_rows_make_the_same_batches_however_they_were_handed_in(tmp_path: Path) -> None:
    """One pass's claims, or the groups' claims gathered one after the other, handed to the writer
    in other pieces: the staged file has the same batches (the extract's row groups follow them,
    so the delivered bytes would differ otherwise)."""
    rows = 2 * BATCH_ROWS + 1234
    one_stream = _staged_batches(tmp_path / "a", [7, BATCH_ROWS - 5, 9_000, rows - BATCH_ROWS - 9_002])
    gathered = _staged_batches(tmp_path / "b", [BATCH_ROWS + 3, 1, rows - BATCH_ROWS - 4])
    assert one_stream == gathered == [BATCH_ROWS, BATCH_ROWS, 1234]
