"""The attacker who solves the whole table at once, and the audit that proves a pattern holds.

The table is GROUPING SETS over the cube, so each margin is the sum of its children along every
dimension: for an additive measure (`claims`, `sum_*`) the suppressed cells are the unknowns of a
linear system whose constants are the shown cells. A suppressed value is disclosed when that
system, with every cell ≥ 0, allows it one value only.

Two tests of it, for two moments:
- `pinned_cells` (while choosing the pattern, from the pattern alone): a cell is fixed by the
  equations whatever the shown values are exactly when no direction of the system's null space
  moves it. Every cell of the cube has at least one claim, so a cell that a direction moves can
  move both ways within the bounds: for `claims` this is the whole LP attack, and it is cheap
  (one SVD per group of linked cells).
- `pinned_values` (on the delivered table, as the blocking check): the linear programme itself
  (SciPy's HiGHS), least and greatest value of every suppressed value of every additive measure,
  given what the table shows. It also catches bounds that pin (a sum that is 0).
Cells are audited a group at a time: only cells linked through a margin to one another can
constrain each other.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

Key = tuple[object, ...]
Equation = list[tuple[Key, int]]  # members with their sign: parent +1, children −1; the sum is 0
RELATIVE_TOLERANCE = 1e-9


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
    from scipy.linalg import null_space

    out = []
    for cells, rules in linked_groups(equations, hidden):
        if not rules:
            continue
        directions = null_space(_matrix(cells, rules))
        if directions.shape[1] == 0:
            out.extend(cells)
            continue
        reach = np.abs(directions).max(axis=1)
        out.extend(cell for cell, moves in zip(cells, reach, strict=True) if moves < 1e-9)
    return out


def pinned_values(
    keys: list[Key], system: Iterable[tuple[Key, list[Key]]], table: pa.Table, measures: list[str]
) -> list[PinnedValue]:
    """Every suppressed value of `table` (rows in the order of `keys`) that the linear programme
    over the shown rows and all margins, cells ≥ 0, allows one value only."""
    from scipy.optimize import linprog

    hidden_flags = table.column("suppressed").to_pylist()
    hidden = {k for k, h in zip(keys, hidden_flags, strict=True) if h}
    equations = margin_equations(system)
    out = []
    for measure in measures:
        shown = {k: v for k, v, h in zip(keys, table.column(measure).to_pylist(), hidden_flags, strict=True) if not h}
        for cells, rules in linked_groups(equations, hidden):
            matrix = _matrix(cells, rules)
            constants = np.array([-sum(sign * shown[m] for m, sign in rule if m in shown) for rule in rules])
            scale = max(1.0, float(np.abs(constants).max(initial=0.0)))
            for i, cell in enumerate(cells):
                bounds = []
                for direction in (1.0, -1.0):
                    objective = np.zeros(len(cells))
                    objective[i] = direction
                    result = linprog(
                        objective, A_eq=matrix if rules else None, b_eq=constants if rules else None, bounds=(0, None)
                    )
                    bounds.append(direction * result.fun if result.status == 0 else float("inf"))
                if bounds[1] - bounds[0] <= RELATIVE_TOLERANCE * scale:
                    out.append(PinnedValue(cell, measure, bounds[0]))
    return out
