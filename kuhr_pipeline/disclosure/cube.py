"""The statistics cube: every cell and every margin (SQL GROUPING SETS over the cube).

A null in a group-by column means "all values" of that dimension; the row with all nulls is the
grand total. A real missing value in a string dimension (an unknown age, say) is labelled
"ukjent" so that it cannot be mistaken for a margin.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kuhr_pipeline.application.plan import YEAR_COLUMN
from kuhr_pipeline.errors import KuhrError
from kuhr_pipeline.extract.generalise import UNKNOWN, generalise
from kuhr_pipeline.staging import Staging

ROWS_PER_BUCKET = 4_000_000  # claims held in memory at once (a few hundred MB)
MEASURES = {"persons": pa.int64(), "claims": pa.int64(), "sum_egenandel": pa.float64(), "sum_refusjon": pa.float64()}
# Each cell's largest single-person share of a sum (never delivered: the dominance rule reads it)
TOPS = {"top_egenandel": pa.float64(), "top_refusjon": pa.float64()}
TOP_OF = {"sum_egenandel": "top_egenandel", "sum_refusjon": "top_refusjon"}


@dataclass(frozen=True)
class Cube:
    """Cells as rows: the dimension values (None = all) and every measure, before suppression."""

    dimensions: list[str]
    table: pa.Table  # dimension columns, then persons, claims, sum_egenandel, sum_refusjon, top_egenandel, top_refusjon


def _dimension_columns(claims: pa.Table, group_by: list[tuple[str, str]], map_year: int | None) -> dict[str, pa.Array]:
    years = claims.column(YEAR_COLUMN) if map_year is not None else None
    out = {}
    for name, how in group_by:
        values = generalise(claims.column(name), how, years, map_year)
        if pa.types.is_string(values.type):
            values = pc.fill_null(values, UNKNOWN)
        out[name] = values
    return out


MAX_CELLS_VARIABLE = "KUHR_MAX_CELLS"
MAX_CELLS = 200_000


def max_cells() -> int:
    value = os.environ.get(MAX_CELLS_VARIABLE, str(MAX_CELLS)).strip()
    if not value.isdigit() or int(value) < 1:
        raise KuhrError.single(f"${MAX_CELLS_VARIABLE}", MAX_CELLS_VARIABLE, f"is {value!r}", f"set it to {MAX_CELLS}")
    return int(value)


def require_cube_size(
    staging: Staging, claims_path: Path, group_by: list[tuple[str, str]], limit: int, map_year: int | None = None
) -> None:
    """Refuse (exit 2) before building a cube that could exceed `limit` cells: the bound is the
    product over the dimensions of (distinct values + 1, the margin), counted from the cohort's
    claims batch by batch, the dimension columns only, and given up as soon as it passes the
    limit (a timestamp dimension stops it within a batch or two)."""
    names = [name for name, _ in group_by]
    seen: dict[str, set[object]] = {name: set() for name in names}
    for batch in staging.batches(claims_path, _read(names, map_year)):
        table = pa.Table.from_batches([batch])
        for name, values in _dimension_columns(table, group_by, map_year).items():
            seen[name].update(pc.unique(values).to_pylist())
        bound = math.prod(len(values) + 1 for values in seen.values())
        if bound > limit:
            shown = ", ".join(f"{name} ≥{len(values)}" for name, values in seen.items())
            raise KuhrError.single(
                "statistics.group_by",
                MAX_CELLS_VARIABLE,
                f"the table would have more than {limit:,} cells (distinct values: {shown}); it was not built",
                "group by fewer or coarser dimensions (month or year, not timestamp; fylke, not kommune)",
            )


def _read(names: list[str], map_year: int | None) -> list[str]:
    """The claims' columns a cube reads for these dimensions (their years too, under a map)."""
    return [*names, *([YEAR_COLUMN] if map_year is not None and YEAR_COLUMN not in names else [])]


def build_cube(
    staging: Staging,
    claims_path: Path,
    group_by: list[tuple[str, str]],
    rows_per_bucket: int = ROWS_PER_BUCKET,
    map_year: int | None = None,
) -> Cube:
    """Aggregate the cohort's claims over every subset of the group-by dimensions.

    Memory is bounded by `rows_per_bucket`, not by the cohort: a larger cohort is split in one
    pass into buckets of persons (by the first characters of the pseudonym), spilled as Arrow
    files beside the claims; each bucket's cube is made in memory and the cubes are added. Adding
    is exact for every measure, distinct persons included, because no person is in two buckets.
    A cube that could exceed KUHR_MAX_CELLS is refused before anything is built. `map_year`: kommune
    and fylke dimensions on that year's map."""
    require_cube_size(staging, claims_path, group_by, max_cells(), map_year)
    names = [name for name, _ in group_by]
    needed = sorted({*_read(names, map_year), "pasient_pseudonym", "egenandel", "refusjon"})
    buckets = min(len(_PREFIXES), max(1, -(-staging.rows(claims_path) // rows_per_bucket)))
    if buckets == 1:
        return _cube_of(staging.read(claims_path, needed), group_by, map_year)
    with tempfile.TemporaryDirectory(prefix=".buckets-", dir=claims_path.parent) as spill:  # mkdtemp: owner-only
        spilled = _spill(staging, claims_path, needed, buckets, Path(spill))
        cubes = [_cube_of(staging.read(path), group_by, map_year) for path in spilled]
    summed = (
        pa.concat_tables(c.table for c in cubes)
        .group_by(names)
        .aggregate([*((m, "sum") for m in MEASURES), *((t, "max") for t in TOPS)])
    )
    table = pa.table(
        {
            **{name: summed.column(name) for name in names},
            **{m: pc.cast(summed.column(f"{m}_sum"), MEASURES[m]) for m in MEASURES},
            **{t: pc.cast(summed.column(f"{t}_max"), TOPS[t]) for t in TOPS},
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


def _cube_of(claims: pa.Table, group_by: list[tuple[str, str]], map_year: int | None = None) -> Cube:
    """The cube of claims held in memory. Claims are first reduced to one row per (finest cell,
    person) with the person's claims and sums there; each level of the cube then groups that
    smaller table by (cell, person) — a person's share of the cell — and by cell: persons are the
    rows, claims and sums add up, and the largest share of each sum is kept for the dominance rule."""
    names = [name for name, _ in group_by]
    dims = _dimension_columns(claims, group_by, map_year)
    person = pc.dictionary_encode(claims.column("pasient_pseudonym").combine_chunks()).indices
    base = pa.table({**dims, "person": person, **{c: claims.column(c) for c in ("egenandel", "refusjon")}})
    per_person = (
        base.group_by([*names, "person"])
        .aggregate([("person", "count"), ("egenandel", "sum"), ("refusjon", "sum")])
        .rename_columns([*names, "person", "claims", "egenandel", "refusjon"])
    )
    parts = []
    for size in range(len(names), -1, -1):
        for subset in combinations(names, size):
            shares = per_person.group_by([*subset, "person"]).aggregate(
                [("claims", "sum"), ("egenandel", "sum"), ("refusjon", "sum")]
            )
            cells = shares.group_by(list(subset)).aggregate(
                [
                    ("person", "count"),
                    ("claims_sum", "sum"),
                    ("egenandel_sum", "sum"),
                    ("refusjon_sum", "sum"),
                    ("egenandel_sum", "max"),
                    ("refusjon_sum", "max"),
                ]
            )
            if not subset and cells.num_rows == 0:  # no claims at all: the grand total is one row of zeros
                cells = pa.table({c: pa.array([0], cells.schema.field(c).type) for c in cells.column_names})
            columns = {
                name: cells.column(name) if name in subset else pa.nulls(cells.num_rows, dims[name].type)
                for name in names
            }
            sources = ["person_count", "claims_sum_sum", "egenandel_sum_sum", "refusjon_sum_sum"]
            for measure, source in zip(MEASURES, sources, strict=True):
                columns[measure] = pc.cast(cells.column(source), MEASURES[measure])
            for top, source in zip(TOPS, ["egenandel_sum_max", "refusjon_sum_max"], strict=True):
                columns[top] = pc.cast(cells.column(source), TOPS[top])
            parts.append(pa.table(columns))
    table = pa.concat_tables(parts)
    if claims.num_rows == 0:
        table = table.slice(0, 0)
    return Cube(names, table)
