"""The statistics table for `data_level: statistics`: the cube, suppressed, written to Parquet."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from kuhr_pipeline.disclosure.cube import build_cube
from kuhr_pipeline.disclosure.suppression import suppress
from kuhr_pipeline.extract.build import resolved
from kuhr_pipeline.spec.model import ApplicationSpec


@dataclass(frozen=True)
class StatisticsTable:
    path: Path | None  # None when the application is person-level
    rows: int = 0
    primary: int = 0
    secondary: int = 0
    min_cell: int = 0
    dimensions: tuple[str, ...] = ()


def build_statistics(spec: ApplicationSpec, cohort_claims: Path, out_dir: Path) -> StatisticsTable:
    if spec.statistics is None:
        return StatisticsTable(None)
    group_by = resolved(spec.requested_group_by())
    cube = build_cube(cohort_claims, group_by)
    result = suppress(cube, list(spec.statistics.measures), spec.statistics.min_cell)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "statistics.parquet"
    tmp = path.with_name(".statistics.parquet.tmp")
    pq.write_table(result.table, tmp)
    tmp.replace(path)
    return StatisticsTable(
        path, result.table.num_rows, result.primary, result.secondary, spec.statistics.min_cell, tuple(cube.dimensions)
    )
