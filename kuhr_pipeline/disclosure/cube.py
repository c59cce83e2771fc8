"""The statistics cube: every cell and every margin (SQL GROUPING SETS over the cube).

A null in a group-by column means "all values" of that dimension; the row with all nulls is the
grand total. A real missing value in a string dimension (an unknown age, say) is labelled
"ukjent" so that it cannot be mistaken for a margin.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from kuhr_pipeline.extract.generalise import generalise

UNKNOWN = "ukjent"
MEASURE_AGGREGATES = {
    "persons": ("pasient_pseudonym", "count_distinct"),
    "claims": ("pasient_pseudonym", "count"),
    "sum_egenandel": ("egenandel", "sum"),
    "sum_refusjon": ("refusjon", "sum"),
}


@dataclass(frozen=True)
class Cube:
    """Cells as rows: the dimension values (None = all) and every measure, before suppression."""

    dimensions: list[str]
    table: pa.Table  # dimension columns, then persons, claims, sum_egenandel, sum_refusjon


def _dimension_columns(claims: pa.Table, group_by: list[tuple[str, str]]) -> dict[str, pa.Array]:
    out = {}
    for name, how in group_by:
        values = generalise(claims.column(name), how)
        if pa.types.is_string(values.type):
            values = pc.fill_null(values, UNKNOWN)
        out[name] = values
    return out


def build_cube(claims_path: Path, group_by: list[tuple[str, str]]) -> Cube:
    """Aggregate the cohort's claims over every subset of the group-by dimensions."""
    names = [name for name, _ in group_by]
    needed = sorted({*names, "pasient_pseudonym", "egenandel", "refusjon"})
    claims = pq.read_table(claims_path, columns=needed)
    dims = _dimension_columns(claims, group_by)
    base = pa.table({**dims, **{c: claims.column(c) for c in ("pasient_pseudonym", "egenandel", "refusjon")}})
    aggregations = [(column, how) for column, how in MEASURE_AGGREGATES.values()]
    parts = []
    for size in range(len(names), -1, -1):
        for subset in combinations(names, size):
            if subset:
                grouped = base.group_by(list(subset)).aggregate(aggregations)
            else:
                grouped = pa.table({f"{c}_{h}": [_total(base, c, h)] for c, h in aggregations})
            columns = {}
            for name in names:
                if name in subset:
                    columns[name] = grouped.column(name)
                else:
                    columns[name] = pa.nulls(grouped.num_rows, dims[name].type)
            for measure, (column, how) in MEASURE_AGGREGATES.items():
                values = grouped.column(f"{column}_{how}")
                columns[measure] = pc.cast(values, pa.float64() if how == "sum" else pa.int64())
            parts.append(pa.table(columns))
    table = pa.concat_tables(parts)
    if claims.num_rows == 0:
        table = table.slice(0, 0)
    return Cube(names, table)


def _total(base: pa.Table, column: str, how: str) -> float | int:
    values = base.column(column)
    if how == "count_distinct":
        return int(pc.count_distinct(values).as_py())
    if how == "count":
        return int(pc.count(values).as_py())
    return float(pc.sum(values).as_py() or 0.0)
