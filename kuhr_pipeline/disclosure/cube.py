"""The statistics cube: every cell and every margin (SQL GROUPING SETS over the cube).

A null in a group-by column means "all values" of that dimension; the row with all nulls is the
grand total. A real missing value in a string dimension (an unknown age, say) is labelled
"ukjent" so that it cannot be mistaken for a margin.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kuhr_pipeline.extract.generalise import generalise
from kuhr_pipeline.staging import Staging

UNKNOWN = "ukjent"
ROWS_PER_BUCKET = 4_000_000  # claims held in memory at once (a few hundred MB)
MEASURES = {"persons": pa.int64(), "claims": pa.int64(), "sum_egenandel": pa.float64(), "sum_refusjon": pa.float64()}


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


def build_cube(
    staging: Staging, claims_path: Path, group_by: list[tuple[str, str]], rows_per_bucket: int = ROWS_PER_BUCKET
) -> Cube:
    """Aggregate the cohort's claims over every subset of the group-by dimensions.

    Memory is bounded by `rows_per_bucket`, not by the cohort: a larger cohort is split in one
    pass into buckets of persons (by the first characters of the pseudonym), spilled as Arrow
    files beside the claims; each bucket's cube is made in memory and the cubes are added. Adding
    is exact for every measure, distinct persons included, because no person is in two buckets."""
    names = [name for name, _ in group_by]
    needed = sorted({*names, "pasient_pseudonym", "egenandel", "refusjon"})
    buckets = min(len(_PREFIXES), max(1, -(-staging.rows(claims_path) // rows_per_bucket)))
    if buckets == 1:
        return _cube_of(staging.read(claims_path, needed), group_by)
    with tempfile.TemporaryDirectory(prefix=".buckets-", dir=claims_path.parent) as spill:  # mkdtemp: owner-only
        spilled = _spill(staging, claims_path, needed, buckets, Path(spill))
        cubes = [_cube_of(staging.read(path), group_by) for path in spilled]
    summed = pa.concat_tables(c.table for c in cubes).group_by(names).aggregate([(m, "sum") for m in MEASURES])
    table = pa.table(
        {
            **{name: summed.column(name) for name in names},
            **{m: pc.cast(summed.column(f"{m}_sum"), cubes[0].table.schema.field(m).type) for m in MEASURES},
        }
    )
    return Cube(names, table)


_PREFIXES = pa.array([f"{i:02x}" for i in range(256)], pa.string())  # pseudonyms are lower-case hex


def _spill(staging: Staging, claims: Path, columns: list[str], buckets: int, folder: Path) -> list[Path]:
    """One read of the claims, each batch's rows sorted by bucket and appended to that bucket's file."""
    staged = staging.schema(claims)
    schema = pa.schema([staged.field(c) for c in columns])
    paths = [folder / f"bucket-{b:03d}.arrow" for b in range(buckets)]
    # unbuffered: 256 buffered buckets would not be bounded
    writers = [staging.arrow_writer(path, schema, buffered=False) for path in paths]
    try:
        for batch in staging.batches(claims, columns):
            prefix = pc.utf8_slice_codeunits(batch.column("pasient_pseudonym"), 0, 2)
            bucket = pc.fill_null(pc.index_in(prefix, value_set=_PREFIXES), 0).to_numpy() % buckets
            order = np.argsort(bucket, kind="stable")
            bounds = np.searchsorted(bucket[order], np.arange(buckets + 1))
            for b in np.flatnonzero(np.diff(bounds)):
                writers[b].write(batch.take(pa.array(order[bounds[b] : bounds[b + 1]])))
    finally:
        for writer in writers:
            writer.close()
    return paths


def _cube_of(claims: pa.Table, group_by: list[tuple[str, str]]) -> Cube:
    """The cube of claims held in memory. Claims are first reduced to one row per (finest cell,
    person) with the person's claims and sums there; every level of the cube is then a group-by
    of that smaller table, persons counted as distinct person numbers (not pseudonym texts)."""
    names = [name for name, _ in group_by]
    dims = _dimension_columns(claims, group_by)
    person = pc.dictionary_encode(claims.column("pasient_pseudonym").combine_chunks()).indices
    base = pa.table({**dims, "person": person, **{c: claims.column(c) for c in ("egenandel", "refusjon")}})
    per_person = base.group_by([*names, "person"]).aggregate(
        [("person", "count"), ("egenandel", "sum"), ("refusjon", "sum")]
    )
    aggregations = [
        ("person", "count_distinct"),
        ("person_count", "sum"),
        ("egenandel_sum", "sum"),
        ("refusjon_sum", "sum"),
    ]
    parts = []
    for size in range(len(names), -1, -1):
        for subset in combinations(names, size):
            if subset:
                grouped = per_person.group_by(list(subset)).aggregate(aggregations)
            else:
                grouped = pa.table({f"{c}_{h}": [_total(per_person.column(c), h)] for c, h in aggregations})
            columns = {
                name: grouped.column(name) if name in subset else pa.nulls(grouped.num_rows, dims[name].type)
                for name in names
            }
            for measure, (column, how) in zip(MEASURES, aggregations, strict=True):
                columns[measure] = pc.cast(grouped.column(f"{column}_{how}"), MEASURES[measure])
            parts.append(pa.table(columns))
    table = pa.concat_tables(parts)
    if claims.num_rows == 0:
        table = table.slice(0, 0)
    return Cube(names, table)


def _total(values: pa.ChunkedArray, how: str) -> float | int | None:
    if how == "count_distinct":
        return int(pc.count_distinct(values).as_py())
    return pc.sum(values).as_py()
