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
from kuhr_pipeline.source.scan import BATCH_ROWS

UNKNOWN = "ukjent"
ROWS_PER_BUCKET = 4_000_000  # claims held in memory at once (a few hundred MB)
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


def build_cube(claims_path: Path, group_by: list[tuple[str, str]], rows_per_bucket: int = ROWS_PER_BUCKET) -> Cube:
    """Aggregate the cohort's claims over every subset of the group-by dimensions.

    Memory is bounded by `rows_per_bucket`, not by the cohort: larger cohorts are split into
    buckets of persons (by the first characters of the pseudonym), each bucket's cube is made in
    memory, and the cubes are added. Adding is exact for every measure, distinct persons included,
    because no person is in two buckets."""
    names = [name for name, _ in group_by]
    needed = sorted({*names, "pasient_pseudonym", "egenandel", "refusjon"})
    claims = pq.ParquetFile(claims_path)
    buckets = min(256, max(1, -(-claims.metadata.num_rows // rows_per_bucket)))
    if buckets == 1:
        return _cube_of(claims.read(columns=needed), group_by)
    cubes = [_cube_of(_bucket(claims, needed, prefixes), group_by) for prefixes in _bucket_prefixes(buckets)]
    summed = (
        pa.concat_tables(c.table for c in cubes).group_by(names).aggregate([(m, "sum") for m in MEASURE_AGGREGATES])
    )
    table = pa.table(
        {
            **{name: summed.column(name) for name in names},
            **{m: pc.cast(summed.column(f"{m}_sum"), cubes[0].table.schema.field(m).type) for m in MEASURE_AGGREGATES},
        }
    )
    return Cube(names, table)


def _bucket_prefixes(buckets: int) -> list[pa.Array]:
    """The 256 two-character hex prefixes of pseudonyms, dealt out to `buckets` buckets."""
    prefixes = [f"{i:02x}" for i in range(256)]
    return [pa.array(prefixes[b::buckets], pa.string()) for b in range(buckets)]


def _bucket(claims: pq.ParquetFile, columns: list[str], prefixes: pa.Array) -> pa.Table:
    """The claims of the persons whose pseudonym starts with one of `prefixes`."""
    parts = [
        batch.filter(pc.is_in(pc.utf8_slice_codeunits(batch.column("pasient_pseudonym"), 0, 2), value_set=prefixes))
        for batch in claims.iter_batches(columns=columns, batch_size=BATCH_ROWS)
    ]
    return pa.Table.from_batches(parts, schema=pa.schema([claims.schema_arrow.field(c) for c in columns]))


def _cube_of(claims: pa.Table, group_by: list[tuple[str, str]]) -> Cube:
    names = [name for name, _ in group_by]
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
