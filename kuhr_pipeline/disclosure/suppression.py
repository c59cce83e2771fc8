"""Small-cell suppression for the statistics cube: primary, then secondary.

Primary: a cell counting fewer than `min_cell` persons (but more than 0) is suppressed.

Secondary: every margin is an equation — a parent cell equals the sum of its children along one
dimension (for the additive measures `claims`, `sum_egenandel`, `sum_refusjon`). If exactly one
member of an equation is suppressed, it can be recovered by subtraction (or, for a suppressed
parent, by addition). So while some equation has exactly one suppressed member, one more member
of it is suppressed: the shown member with the fewest persons (then fewest claims), which keeps
the loss small. This runs to a fixed point over every dimension at every level of the cube.

What it guarantees: no suppressed value equals a shown margin minus shown cells along any single
dimension, at any level. What it does not: it is not an optimal (minimum-loss) pattern, and it
does not solve the full linear system — with many dimensions a determined attacker combining
several equations may narrow a suppressed value to an interval (exact recovery needs a pattern
with a single unknown in some combination, which this rule removes for single equations only).
`persons` counts distinct persons, which do not add up across cells; they are suppressed with
their row, and are never what an attacker subtracts.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import pyarrow as pa

from kuhr_pipeline.disclosure.cube import Cube

Key = tuple[object, ...]


@dataclass(frozen=True)
class Suppressed:
    table: pa.Table  # dimensions, the requested measures (null where suppressed), `suppressed`
    primary: int
    secondary: int


def equations(keys: list[Key]) -> dict[tuple[Key, int], list[Key]]:
    """(parent, dimension) → children: the cells the parent is the sum of along that dimension."""
    present = set(keys)
    out: dict[tuple[Key, int], list[Key]] = defaultdict(list)
    for key in keys:
        for d, value in enumerate(key):
            if value is not None:
                parent = (*key[:d], None, *key[d + 1 :])
                if parent in present:
                    out[(parent, d)].append(key)
    return dict(out)


def choose_suppression(keys: list[Key], persons: list[int], claims: list[int], min_cell: int) -> tuple[set[Key], int]:
    """The set of suppressed cells, and how many of them are primary."""
    size = {k: (p, c) for k, p, c in zip(keys, persons, claims, strict=True)}
    hidden = {k for k, p in zip(keys, persons, strict=True) if 0 < p < min_cell}
    primary = len(hidden)
    system = sorted(equations(keys).items(), key=lambda item: repr(item[0]))
    changed = True
    while changed:
        changed = False
        for (parent, _), children in system:
            members = [parent, *children]
            if sum(m in hidden for m in members) == 1:
                shown = [m for m in members if m not in hidden]
                hidden.add(min(shown, key=lambda m: (*size[m], m == parent, repr(m))))
                changed = True
    return hidden, primary


def suppress(cube: Cube, measures: list[str], min_cell: int) -> Suppressed:
    table = cube.table
    dims = [table.column(d).to_pylist() for d in cube.dimensions]
    keys: list[Key] = list(zip(*dims, strict=True)) if dims else [() for _ in range(table.num_rows)]
    persons = table.column("persons").to_pylist()
    claims = table.column("claims").to_pylist()
    hidden, primary = choose_suppression(keys, persons, claims, min_cell)
    mask = pa.array([k in hidden for k in keys], pa.bool_())
    columns = {d: table.column(d) for d in cube.dimensions}
    for measure in measures:
        column = table.column(measure)
        columns[measure] = pa.array(
            [None if h else v for h, v in zip(mask.to_pylist(), column.to_pylist(), strict=True)], column.type
        )
    columns["suppressed"] = mask
    return Suppressed(pa.table(columns), primary, len(hidden) - primary)


def recoverable(table: pa.Table, dimensions: list[str]) -> list[Key]:
    """Cells that some single equation would reveal (for checks and tests): must be empty."""
    keys: list[Key] = list(zip(*(table.column(d).to_pylist() for d in dimensions), strict=True))
    hidden = {k for k, s in zip(keys, table.column("suppressed").to_pylist(), strict=True) if s}
    out = []
    for (parent, _), children in equations(keys).items():
        members = [parent, *children]
        lone = [m for m in members if m in hidden]
        if len(lone) == 1:
            out.append(lone[0])
    return out
