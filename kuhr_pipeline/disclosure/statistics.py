"""The statistics table for `data_level: statistics`: the cube, suppressed, written to Parquet,
with what the blocking check needs to prove it (the cube's true values, the hypercubes)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from kuhr_pipeline.application.model import ApplicationSpec
from kuhr_pipeline.disclosure import DISCLOSURE_REPORT
from kuhr_pipeline.disclosure.cube import build_cube
from kuhr_pipeline.disclosure.proof import Proof
from kuhr_pipeline.disclosure.suppression import DOMINANCE_PERCENT, Key, suppress
from kuhr_pipeline.staging import Staging

TABLE_FILE = "statistics.parquet"
CUBE_FILE = "statistics-cube.parquet"  # the values before suppression: staging only, sealed
CERTIFICATES_FILE = "statistics-certificates.parquet"


@dataclass(frozen=True)
class StatisticsTable:
    path: Path
    rows: int = 0
    primary: int = 0
    secondary: int = 0
    min_cell: int = 0
    dimensions: tuple[str, ...] = ()
    cube_path: Path | None = None
    certificates_path: Path | None = None
    method: str = ""  # how the secondary cells were chosen


def build_statistics(
    spec: ApplicationSpec, cohort_claims: Path, staging: Staging, out: Staging, previous: set[Key] | None = None
) -> StatisticsTable:
    """The cube of the staged claims, suppressed (`previous`: cells the last release hid), sealed
    in `out` with the proof's inputs."""
    if spec.statistics is None:
        raise ValueError(f"{spec.application_id}: data_level {spec.data_level} has no statistics table")
    group_by = spec.plan.pairs
    cube = build_cube(staging, cohort_claims, group_by, map_year=spec.plan.map_year)
    result = suppress(cube, list(spec.statistics.measures), spec.statistics.min_cell, previous)
    cube_path, certificates_path = out.path(CUBE_FILE), out.path(CERTIFICATES_FILE)
    out.write_parquet(cube_path, cube.table)
    out.write_parquet(certificates_path, certificates_table(result.certificates))
    path = out.path(TABLE_FILE)
    tmp = path.with_name(f".{TABLE_FILE}.tmp")
    out.write_parquet(tmp, result.table)
    tmp.replace(path)
    return StatisticsTable(
        path,
        result.table.num_rows,
        result.primary,
        result.secondary,
        spec.statistics.min_cell,
        tuple(cube.dimensions),
        cube_path,
        certificates_path,
        result.method,
    )


def certificates_table(certificates: list[np.ndarray]) -> pa.Table:
    """Hypercubes as (certificate, row) pairs: the corners as rows of the table."""
    numbers = [np.full(len(c), i, dtype=np.int32) for i, c in enumerate(certificates)]
    return pa.table(
        {
            "certificate": pa.array(np.concatenate(numbers) if numbers else [], pa.int32()),
            "row": pa.array(np.concatenate(certificates) if certificates else [], pa.int32()),
        }
    )


def certificates_of(table: pa.Table) -> list[np.ndarray]:
    numbers, rows = table.column("certificate").to_numpy(), table.column("row").to_numpy()
    order = np.argsort(numbers, kind="stable")
    bounds = np.flatnonzero(np.diff(numbers[order])) + 1
    return [part.astype(np.int64) for part in np.split(rows[order], bounds)] if len(rows) else []


def disclosure_report(statistics: StatisticsTable, proof: Proof) -> dict[str, Any]:
    """What the delivery's disclosure report says of a statistics table: the rules, the pattern's
    size and the proof's figures (counts of cells and widths, never a cell's value)."""
    return {
        "data_level": "statistics",
        "rules": [
            f"primary: fewer than {statistics.min_cell} persons (min_cell), more than 0",
            f"primary: one person more than {DOMINANCE_PERCENT} % of a delivered sum "
            f"(dominance (1, {DOMINANCE_PERCENT} %))",
            "primary: every cell the application's last statistics delivery suppressed",
            "secondary: no suppressed value is fixed by the whole table (cells ≥ 0), also for the single "
            "person of a suppressed one-person cell, who knows it",
        ],
        "secondary_method": statistics.method,
        "primary": statistics.primary,
        "secondary": statistics.secondary,
        **proof.figures(),
        "proof_holds": proof.holds,
    }


def keep_disclosure_report(statistics: StatisticsTable, proof: Proof, staging: Staging) -> dict[str, Any]:
    """The report (`disclosure_report`), kept in staging for the delivery, without the proof's
    time: a delivered file says the same for the same spec, key and source, whatever ran it. The
    figures returned (for the check's metadata) include it."""
    figures = disclosure_report(statistics, proof)
    delivered = {name: value for name, value in figures.items() if name != "proof_seconds"}
    staging.write_small(DISCLOSURE_REPORT, json.dumps(delivered, indent=2).encode("utf-8"))
    return figures
