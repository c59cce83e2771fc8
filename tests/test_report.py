"""Previews shown in Dagster metadata: a few rows, read without the rest, digit runs hidden."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from kuhr_pipeline.report import HIDDEN, preview
from tests.helpers import person_id, staging_in, write_sealed_parquet


def test_preview_shows_the_first_rows_and_hides_long_digit_runs(tmp_path: Path) -> None:
    pseudonym = "0123456789abcdef0123456789abcdef"
    table = pa.table(
        {
            "pasient_pseudonym": [pseudonym] * 20,
            "avvisningsgrunn": [f"duplikat av {person_id(1)}"] + ["for sent"] * 19,
            "n": list(range(20)),
        }
    )
    path = tmp_path / "claims.parquet"
    write_sealed_parquet(path, table, row_group_size=8)
    lines = preview(path, 5, staging_in(tmp_path)).splitlines()
    assert len(lines) == 2 + 5
    assert lines[0] == "| pasient_pseudonym | avvisningsgrunn | n |"
    assert pseudonym in lines[2] and person_id(1) not in "\n".join(lines) and HIDDEN in lines[2]
    assert lines[-1].endswith("| 4 |")


def test_preview_of_an_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.parquet"
    write_sealed_parquet(path, pa.table({"n": pa.array([], pa.int64())}))
    assert preview(path, 5, staging_in(tmp_path)) == "(empty)"
