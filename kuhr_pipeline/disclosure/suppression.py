"""Small-cell suppression for the statistics cube: primary, then secondary by hypercubes.

Primary: a cell counting fewer than `min_cell` persons (but more than 0) is suppressed, and so
is a cell where one person contributes more than 85 % of a delivered sum (the dominance rule
(1, 85 %): the others' total would tell that person's amount within 15 %), and every cell the
application's last release hid (so that two releases cannot be differenced).

Secondary (disclosure.hypercubes): more cells are suppressed until every suppressed cell is a
corner of a hypercube of suppressed cells, which lets it move while every shown value and every
margin equation stays true — also for the single person of a suppressed one-person cell, who
knows that cell's values. The hypercubes are the proof: disclosure.proof checks them on the
delivered table before publishing (quality.statistics_rules), and small tables are audited by
the linear programme as well (disclosure.audit).

What it guarantees: for every suppressed cell and additive measure (`claims`, `sum_*`), the
values consistent with all shown cells and all margins (cells ≥ 0) form an interval wider than
one value, for both attackers. What it does not: the pattern is greedy (cheapest hypercube per
cell among a few candidates per dimension), not one of least loss. `persons` counts distinct
persons, which do not add up across cells; they are suppressed with their row, and are never
what an attacker subtracts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from kuhr_pipeline.disclosure.cube import TOP_OF, Cube
from kuhr_pipeline.disclosure.exact import choose_suppression
from kuhr_pipeline.disclosure.hypercubes import Grid, protect

Key = tuple[object, ...]
SUMS = ("sum_egenandel", "sum_refusjon")
EXACT_CELLS = 400  # up to this many cells, solving the system (disclosure.exact) is tried too


@dataclass(frozen=True)
class Suppressed:
    table: pa.Table  # dimensions, the requested measures (null where suppressed), `suppressed`
    primary: int
    secondary: int
    certificates: list[np.ndarray]  # each hypercube's corners, as rows of `table` (none if solved)
    method: str = "hypercubes"  # or "solving the system" (a small table, where that hid less)


def suppress(
    cube: Cube, measures: list[str], min_cell: int, previous: set[Key] | None = None, exact_cells: int = EXACT_CELLS
) -> Suppressed:
    """Suppress the cube for delivery; `previous`: the cells the application's last release hid.
    Hypercubes always; for a table of up to `exact_cells` cells also by solving the system, and
    the pattern that hides fewer persons (then claims) is delivered."""
    table = cube.table
    keys = _keys(cube)
    persons = table.column("persons").to_numpy()
    primary = primary_cells(cube, measures, min_cell, previous)
    sums = [m for m in measures if m in SUMS]
    protection = protect(grid_of(table, keys, sums), primary)
    hidden, certificates, method = protection.hidden, protection.certificates, "hypercubes"
    if len(keys) <= exact_cells:  # a small table: solving the system may hide less (a sparse one)
        chosen, _ = choose_suppression(
            keys,
            persons.tolist(),
            table.column("claims").to_pylist(),
            min_cell,
            {m: table.column(m).to_pylist() for m in sums},
            {k for k, p in zip(keys, primary.tolist(), strict=True) if p},
        )
        solved = np.array([k in chosen for k in keys], dtype=bool)
        if _loss(table, solved) < _loss(table, hidden):
            hidden, certificates, method = solved, [], "solving the system"
    columns = {d: table.column(d) for d in cube.dimensions}
    for measure in measures:
        column = table.column(measure)
        columns[measure] = pa.array(
            [None if h else v for h, v in zip(hidden.tolist(), column.to_pylist(), strict=True)], column.type
        )
    columns["suppressed"] = pa.array(hidden, pa.bool_())
    count = int(primary.sum())
    return Suppressed(pa.table(columns), count, int(hidden.sum()) - count, certificates, method)


def _keys(cube: Cube) -> list[Key]:
    dims = [cube.table.column(d).to_pylist() for d in cube.dimensions]
    return list(zip(*dims, strict=True)) if dims else [() for _ in range(cube.table.num_rows)]


def primary_cells(cube: Cube, measures: list[str], min_cell: int, previous: set[Key] | None = None) -> np.ndarray:
    """Which cells primary suppression hides: fewer than `min_cell` persons (but not none), one
    person's dominance of a delivered sum, and the cells the last release hid."""
    keys, table = _keys(cube), cube.table
    persons = table.column("persons").to_numpy()
    dominated = {key for m in measures if m in TOP_OF for key in _dominated(keys, table, m)}
    also = dominated | (previous or set())
    return np.asarray(((persons > 0) & (persons < min_cell)) | np.array([k in also for k in keys], dtype=bool))


def _loss(table: pa.Table, hidden: np.ndarray) -> tuple[int, int]:
    """What a pattern costs the researcher: persons in suppressed cells, then claims."""
    return (
        int(table.column("persons").to_numpy()[hidden].sum()),
        int(table.column("claims").to_numpy()[hidden].sum()),
    )


def grid_of(table: pa.Table, keys: list[Key], sums: list[str]) -> Grid:
    """The cube's cells in a dense grid, with the sums whose zeros matter (the delivered ones)."""
    return Grid.of(
        keys,
        table.column("persons").to_numpy(),
        table.column("claims").to_numpy(),
        {m: table.column(m).to_numpy() for m in sums},
    )


DOMINANCE_SHARE = 0.85
DOMINANCE_PERCENT = round(DOMINANCE_SHARE * 100)  # the share in words (codebook, disclosure report)


def _dominated(keys: list[Key], table: pa.Table, measure: str) -> list[Key]:
    """Cells where one person's share of `measure` is more than DOMINANCE_SHARE of it."""
    totals, tops = table.column(measure).to_pylist(), table.column(TOP_OF[measure]).to_pylist()
    return [k for k, total, top in zip(keys, totals, tops, strict=True) if total and top > DOMINANCE_SHARE * total]
