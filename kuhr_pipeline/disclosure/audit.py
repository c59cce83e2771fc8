"""The attacker who solves the whole table at once, and the audit that proves a pattern holds.

The table is GROUPING SETS over the cube, so each margin is the sum of its children along every
dimension: for an additive measure (`claims`, `sum_*`) the suppressed cells are the unknowns of a
linear system whose constants are the shown cells. A suppressed value is disclosed when that
system, with every cell ≥ 0, allows it one value only.

`pinned_values` decides it exactly: the linear programme (SciPy's HiGHS) over what the table
shows, with the null space of the equations where a solution strictly inside the bounds exists
(a cell no direction of the null space moves is fixed; one that some direction moves can move
both ways). Cells are audited a group at a time: only cells linked through a margin to one
another can constrain each other. The blocking check runs it on tables with few suppressed
cells; every table is proven by its hypercubes (disclosure.proof), which scale.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from kuhr_pipeline.disclosure.equations import equations as margins_of

Key = tuple[object, ...]
Equation = list[tuple[Key, int]]  # members with their sign: parent +1, children −1; the sum is 0
# For the programme's own variables in [0, 1] (the margin t, the min(x_i, 1)): never scaled by the
# values, or sums of millions of kroner would make every t look like 0 and every cell pinned.
MARGIN_TOLERANCE = 1e-7


@dataclass(frozen=True)
class PinnedValue:
    cell: Key
    measure: str
    value: float


def margin_equations(system: Iterable[tuple[Key, list[Key]]]) -> list[Equation]:
    """Each (parent, children) as an equation: parent − Σ children = 0."""
    return [[(parent, 1), *[(child, -1) for child in children]] for parent, children in system]


def linked_groups(equations: list[Equation], hidden: set[Key]) -> list[tuple[list[Key], list[Equation]]]:
    """The suppressed cells split into groups that share no equation, each with its equations."""
    parent_of: dict[Key, Key] = {cell: cell for cell in hidden}

    def root(cell: Key) -> Key:
        while parent_of[cell] != cell:
            parent_of[cell] = parent_of[parent_of[cell]]
            cell = parent_of[cell]
        return cell

    touching = []
    for equation in equations:
        members = [m for m, _ in equation if m in hidden]
        if members:
            touching.append((members[0], equation))
            for other in members[1:]:
                parent_of[root(other)] = root(members[0])
    cells: dict[Key, list[Key]] = {}
    for cell in sorted(hidden, key=repr):
        cells.setdefault(root(cell), []).append(cell)
    rules: dict[Key, list[Equation]] = {}
    for member, equation in touching:
        rules.setdefault(root(member), []).append(equation)
    return [(members, rules.get(group, [])) for group, members in cells.items()]


def _matrix(cells: list[Key], equations: list[Equation]) -> np.ndarray:
    index = {cell: i for i, cell in enumerate(cells)}
    matrix = np.zeros((len(equations), len(cells)))
    for row, equation in enumerate(equations):
        for member, sign in equation:
            if member in index:
                matrix[row, index[member]] += sign
    return matrix


def pinned_cells(equations: list[Equation], hidden: set[Key]) -> list[Key]:
    """Suppressed cells that the equations alone fix (no direction of the null space moves them)."""
    out: list[Key] = []
    for cells, rules in linked_groups(equations, hidden):
        if rules:
            fixed = _fixed_by_equations(_matrix(cells, rules))
            out.extend(cell for cell, pinned in zip(cells, fixed, strict=True) if pinned)
    return out


def _fixed_by_equations(matrix: np.ndarray) -> np.ndarray:
    """For each column, whether every solution of matrix · x = b gives it the same value."""
    from scipy.linalg import null_space

    directions = null_space(matrix)
    if directions.shape[1] == 0:
        return np.ones(matrix.shape[1], dtype=bool)
    return np.abs(directions).max(axis=1) < 1e-9


def pinned_values(
    keys: list[Key], equations: list[Equation], hidden: set[Key], values: Mapping[str, Sequence[float | None]]
) -> list[PinnedValue]:
    """Every suppressed value that the linear programme over the shown values (`values[measure]`,
    in the order of `keys`; hidden and null ones are unknowns) and all margins, cells ≥ 0, allows
    one value only."""
    out = []
    for measure, column in values.items():
        shown = {k: float(v) for k, v in zip(keys, column, strict=True) if k not in hidden and v is not None}
        unknown = set(keys) - set(shown)
        for cells, rules in linked_groups(equations, unknown):
            matrix = _matrix(cells, rules)
            constants = np.array([-sum(sign * shown[m] for m, sign in rule if m in shown) for rule in rules])
            for i, value in _pinned_in_group(matrix, constants):
                out.append(PinnedValue(cells[i], measure, value))
    return out


def _pinned_in_group(matrix: np.ndarray, constants: np.ndarray) -> list[tuple[int, float]]:
    """The columns the programme `matrix · x = constants, x ≥ 0` allows one value only, with it.

    Not two programmes per cell: one finds a solution x0 and the largest t with every x ≥ t. If
    t > 0, a point strictly inside the bounds exists, so a cell is pinned exactly when the
    equations fix it (the null space). Otherwise `_always_zero` finds the cells no solution makes
    positive (pinned at 0); the others are positive together at some solution (by convexity), so
    for them the null space of their columns decides.
    """
    from scipy.optimize import linprog

    count = matrix.shape[1]
    if matrix.shape[0] == 0:
        return []  # no equation: every value is free
    tolerance = 1e-7 * max(1.0, float(np.abs(constants).max(initial=0.0)))
    widest = linprog(
        np.r_[np.zeros(count), -1.0],
        A_ub=np.c_[-np.eye(count), np.ones(count)],
        b_ub=np.zeros(count),
        A_eq=np.c_[matrix, np.zeros(len(matrix))],
        b_eq=constants,
        bounds=[(0, None)] * count + [(0, 1)],
    )
    if widest.status != 0:
        return []  # no solution at all: the table contradicts itself, which the other rules report
    solution = widest.x[:count]
    zero = np.zeros(count, dtype=bool)
    if widest.x[count] <= MARGIN_TOLERANCE:  # t lies in [0, 1] whatever the values' scale
        zero[_always_zero(matrix, constants, np.flatnonzero(solution <= tolerance))] = True
    pinned = zero.copy()
    free = np.flatnonzero(~zero)
    if len(free):
        pinned[free] = _fixed_by_equations(matrix[:, free])
    return [(int(i), 0.0 if zero[i] else float(solution[i])) for i in np.flatnonzero(pinned)]


def _always_zero(matrix: np.ndarray, constants: np.ndarray, candidates: np.ndarray) -> list[int]:
    """Of the candidate columns, those that are 0 in every solution of matrix · x = constants, x ≥ 0.

    Each programme makes as many candidates positive as it can at once (Σ min(x_i, 1)); those
    leave the candidates, until a programme can make none of the rest positive."""
    from scipy.optimize import linprog

    count = matrix.shape[1]
    remaining = [int(i) for i in candidates]
    while remaining:
        k = len(remaining)
        picks = np.zeros((k, count))
        picks[np.arange(k), remaining] = -1.0
        result = linprog(
            np.r_[np.zeros(count), -np.ones(k)],
            A_ub=np.c_[picks, np.eye(k)],
            b_ub=np.zeros(k),
            A_eq=np.c_[matrix, np.zeros((len(matrix), k))],
            b_eq=constants,
            bounds=[(0, None)] * count + [(0, 1)] * k,
        )
        if result.status != 0:
            break
        positive = result.x[count:] > MARGIN_TOLERANCE  # min(x_i, 1): in [0, 1] too
        if not positive.any():
            break
        remaining = [i for i, moved in zip(remaining, positive, strict=True) if not moved]
    return remaining


def narrowest_intervals(
    keys: list[Key], equations: list[Equation], hidden: set[Key], values: Mapping[str, Sequence[float | None]]
) -> dict[str, float]:
    """Per measure, the narrowest interval any suppressed value has (max − min of the programme,
    two per cell; small tables only)."""
    from scipy.optimize import linprog
    from scipy.sparse import csr_matrix

    out: dict[str, float] = {}
    for measure, column in values.items():
        shown = {k: float(v) for k, v in zip(keys, column, strict=True) if k not in hidden and v is not None}
        narrowest = float("inf")
        for cells, rules in linked_groups(equations, set(keys) - set(shown)):
            if not rules:
                continue
            matrix = csr_matrix(_matrix(cells, rules))
            constants = np.array([-sum(sign * shown[m] for m, sign in rule if m in shown) for rule in rules])
            for i in range(len(cells)):
                ends = []
                for direction in (1.0, -1.0):
                    objective = np.zeros(len(cells))
                    objective[i] = direction
                    result = linprog(objective, A_eq=matrix, b_eq=constants, bounds=(0, None))
                    ends.append(direction * result.fun if result.status == 0 else float("inf"))
                narrowest = min(narrowest, ends[1] - ends[0])
        out[measure] = narrowest
    return out


def pinned(table: pa.Table, dimensions: list[str], measures: list[str]) -> list[PinnedValue]:
    """Suppressed values the whole delivered table still fixes (for the blocking check): must be empty."""
    keys: list[Key] = list(zip(*(table.column(d).to_pylist() for d in dimensions), strict=True))
    hidden = {k for k, h in zip(keys, table.column("suppressed").to_pylist(), strict=True) if h}
    whole = margin_equations((parent, children) for (parent, _), children in margins_of(keys).items())
    values = {m: table.column(m).to_pylist() for m in measures if m in table.column_names}
    return pinned_values(keys, whole, hidden, values)
