"""Previews shown in Dagster metadata: a few rows, read without the rest, digit runs hidden; counts per month."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from kuhr_pipeline.report import HIDDEN, months_by_year, preview
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
    columns, rows = preview(path, 5, staging_in(tmp_path))
    assert columns == ["pasient_pseudonym", "avvisningsgrunn", "n"] and len(rows) == 5
    assert rows[0] == {"pasient_pseudonym": pseudonym, "avvisningsgrunn": f"duplikat av {HIDDEN}", "n": "0"}
    assert person_id(1) not in str(rows) and rows[-1]["n"] == "4"


def test_preview_of_an_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.parquet"
    write_sealed_parquet(path, pa.table({"n": pa.array([], pa.int64())}))
    assert preview(path, 5, staging_in(tmp_path)) == (["n"], [])


def test_claims_per_month_fold_into_one_row_per_year() -> None:
    rows = months_by_year({"2019-01": "12", "2019-12": "<5", "2020-03": "7"})
    assert [r["year"] for r in rows] == ["2019", "2020"]
    assert rows[0]["01"] == "12" and rows[0]["12"] == "<5" and rows[0]["02"] == "" and rows[1]["03"] == "7"
