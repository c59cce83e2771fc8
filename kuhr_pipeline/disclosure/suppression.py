"""Small-cell suppression for the statistics cube: primary, then secondary until the audit holds.

Primary: a cell counting fewer than `min_cell` persons (but more than 0) is suppressed, and so
is a cell where one person contributes more than 85 % of a delivered sum (the dominance rule
(1, 85 %): the others' total would tell that person's amount within 15 %).

Secondary: every margin is an equation — a parent cell equals the sum of its children along one
dimension (for the additive measures `claims`, `sum_egenandel`, `sum_refusjon`). First the cheap
rule: while some equation has exactly one suppressed member (recovered by subtraction), one more
member of it is suppressed. Then the whole system (disclosure.audit): while some suppressed cell
is still fixed by the equations taken together, one more cell of an equation it is in is
suppressed, and the cheap rule runs again. The member chosen is always the shown one with the
fewest persons (then claims, then a child before its parent), which keeps the loss small.

What it guarantees: for every suppressed cell and additive measure, the values consistent with
all shown cells and all margins (cells ≥ 0) form an interval wider than one value — the linear
programme an attacker would solve — also for the single person of a suppressed one-person cell,
who knows that cell's own values; the delivered table is audited with that programme again
before publishing (quality.statistics_rules). What it does not: the pattern is greedy, not a
minimum-loss one. `persons` counts distinct persons, which do not add up across cells; they are
suppressed with their row, and are never what an attacker subtracts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

import pyarrow as pa

from kuhr_pipeline.disclosure.audit import Equation, PinnedValue, margin_equations, pinned_cells, pinned_values
from kuhr_pipeline.disclosure.cube import TOP_OF, Cube

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


def choose_suppression(
    keys: list[Key],
    persons: list[int],
    claims: list[int],
    min_cell: int,
    sums: Mapping[str, list[float]] | None = None,
    also_primary: set[Key] | None = None,
) -> tuple[set[Key], int]:
    """The set of suppressed cells, and how many of them are primary. `sums` (the `sum_*` measures
    in the order of `keys`) lets the audit see sums of 0, the one case where the bounds pin;
    `also_primary` cells (dominated ones, the last release's pattern) are primary whatever their
    person count, when they exist in this table."""
    size = {k: (p, c) for k, p, c in zip(keys, persons, claims, strict=True)}
    hidden = {k for k, p in zip(keys, persons, strict=True) if 0 < p < min_cell} | ((also_primary or set()) & set(size))
    primary = len(hidden)
    system = sorted(equations(keys).items(), key=lambda item: repr(item[0]))
    whole = margin_equations((parent, children) for (parent, _), children in system)
    while True:
        _close_single_unknowns(system, hidden, size)
        exposed = (
            pinned_cells(whole, hidden)
            or [p.cell for p in _pinned_at_zero(keys, whole, hidden, sums or {})]
            or _exposed_to_an_insider(whole, hidden, size)
        )
        if not exposed:
            return hidden, primary
        near = [m for equation in whole if any(m == exposed[0] for m, _ in equation) for m, _ in equation]
        candidates = [m for m in near if m not in hidden] or [k for k in keys if k not in hidden]
        if not candidates:  # every cell hidden: nothing shown that anyone could solve with
            return hidden, primary
        hidden.add(min(candidates, key=lambda m: (*size[m], repr(m))))


def _exposed_to_an_insider(whole: list[Equation], hidden: set[Key], size: dict[Key, tuple[int, int]]) -> list[Key]:
    """Suppressed cells fixed for the single person of a suppressed one-person cell, who knows
    that cell's values (12 / 1 / 10 / 1 in a margin: each of the two 1s gives the other away)."""
    for single in sorted((k for k in hidden if size[k][0] == 1), key=repr):
        exposed = [c for c in pinned_cells(whole, hidden - {single}) if not _same_person(c, single, size)]
        if exposed:
            return exposed
    return []


def _same_person(cell: Key, single: Key, size: dict[Key, tuple[int, int]]) -> bool:
    """Whether a one-person `cell` holds the same person as the one-person cell `single`: they
    overlap (their common refinement has someone in it), so what the insider learns is his own."""
    if size[cell][0] != 1 or any(a is not None and b is not None and a != b for a, b in zip(cell, single, strict=True)):
        return False
    common = tuple(a if a is not None else b for a, b in zip(cell, single, strict=True))
    return size.get(common, (0, 0))[0] >= 1


def _pinned_at_zero(
    keys: list[Key], whole: list[Equation], hidden: set[Key], sums: Mapping[str, list[float]]
) -> list[PinnedValue]:
    """Sums the linear programme pins although the null space moves them. That needs a suppressed
    value of 0 (a bound reached): positive values can move a little either way along any direction
    that moves them. So the programme runs only for the measures where a suppressed sum is 0."""
    zero = {
        measure: column
        for measure, column in sums.items()
        if any(k in hidden and v == 0 for k, v in zip(keys, column, strict=True))
    }
    return pinned_values(keys, whole, hidden, zero) if zero else []


def _close_single_unknowns(
    system: list[tuple[tuple[Key, int], list[Key]]], hidden: set[Key], size: dict[Key, tuple[int, int]]
) -> None:
    """Until no equation has exactly one suppressed member, suppress one more member of such an
    equation: the shown one with the fewest persons, then claims, a child before the parent."""
    changed = True
    while changed:
        changed = False
        for (parent, _), children in system:
            members = [parent, *children]
            if sum(m in hidden for m in members) == 1:
                shown = [m for m in members if m not in hidden]
                hidden.add(min(shown, key=lambda m: (*size[m], m == parent, repr(m))))
                changed = True


def suppress(cube: Cube, measures: list[str], min_cell: int, previous: set[Key] | None = None) -> Suppressed:
    """Suppress the cube for delivery; `previous`: the cells the application's last release hid."""
    table = cube.table
    dims = [table.column(d).to_pylist() for d in cube.dimensions]
    keys: list[Key] = list(zip(*dims, strict=True)) if dims else [() for _ in range(table.num_rows)]
    persons = table.column("persons").to_pylist()
    claims = table.column("claims").to_pylist()
    sums = {m: table.column(m).to_pylist() for m in ("sum_egenandel", "sum_refusjon")}
    dominated = {key for m in measures if m in TOP_OF for key in _dominated(keys, table, m)}
    hidden, primary = choose_suppression(keys, persons, claims, min_cell, sums, dominated | (previous or set()))
    mask = pa.array([k in hidden for k in keys], pa.bool_())
    columns = {d: table.column(d) for d in cube.dimensions}
    for measure in measures:
        column = table.column(measure)
        columns[measure] = pa.array(
            [None if h else v for h, v in zip(mask.to_pylist(), column.to_pylist(), strict=True)], column.type
        )
    columns["suppressed"] = mask
    return Suppressed(pa.table(columns), primary, len(hidden) - primary)


DOMINANCE_SHARE = 0.85


def _dominated(keys: list[Key], table: pa.Table, measure: str) -> list[Key]:
    """Cells where one person's share of `measure` is more than DOMINANCE_SHARE of it."""
    totals, tops = table.column(measure).to_pylist(), table.column(TOP_OF[measure]).to_pylist()
    return [k for k, total, top in zip(keys, totals, tops, strict=True) if total and top > DOMINANCE_SHARE * total]


def pinned(table: pa.Table, dimensions: list[str], measures: list[str]) -> list[PinnedValue]:
    """Suppressed values the whole delivered table still fixes (for the blocking check): must be empty."""
    keys: list[Key] = list(zip(*(table.column(d).to_pylist() for d in dimensions), strict=True))
    hidden = {k for k, h in zip(keys, table.column("suppressed").to_pylist(), strict=True) if h}
    whole = margin_equations((parent, children) for (parent, _), children in equations(keys).items())
    values = {m: table.column(m).to_pylist() for m in measures if m in table.column_names}
    return pinned_values(keys, whole, hidden, values)
