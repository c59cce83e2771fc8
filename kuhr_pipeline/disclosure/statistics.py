"""The statistics table for `data_level: statistics`: the cube, suppressed, written to Parquet."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kuhr_pipeline.disclosure.cube import build_cube
from kuhr_pipeline.disclosure.suppression import Key, suppress
from kuhr_pipeline.extract.build import resolved
from kuhr_pipeline.spec.model import ApplicationSpec
from kuhr_pipeline.staging import Staging


@dataclass(frozen=True)
class StatisticsTable:
    path: Path | None  # None when the application is person-level
    rows: int = 0
    primary: int = 0
    secondary: int = 0
    min_cell: int = 0
    dimensions: tuple[str, ...] = ()


def build_statistics(
    spec: ApplicationSpec, cohort_claims: Path, staging: Staging, out: Staging, previous: set[Key] | None = None
) -> StatisticsTable:
    """The cube of the staged claims, suppressed (`previous`: cells the last release hid), sealed
    in `out` (statistics.parquet)."""
    if spec.statistics is None:
        return StatisticsTable(None)
    group_by = resolved(spec.requested_group_by())
    cube = build_cube(staging, cohort_claims, group_by)
    result = suppress(cube, list(spec.statistics.measures), spec.statistics.min_cell, previous)
    path = out.path("statistics.parquet")
    tmp = path.with_name(".statistics.parquet.tmp")
    out.write_parquet(tmp, result.table)
    tmp.replace(path)
    return StatisticsTable(
        path, result.table.num_rows, result.primary, result.secondary, spec.statistics.min_cell, tuple(cube.dimensions)
    )
