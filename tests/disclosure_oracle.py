"""Oracles for suppression that do not import the code under test.

The attacker knows every shown value of the delivered table and that it is GROUPING SETS over
the cube (a null in a group-by column means "all values"), so every margin is the sum of its
children along each dimension, and no cell is negative. A suppressed value is disclosed when
only one value is consistent with all of that: found by enumerating the integer solutions (tiny
cubes) and by linear programming with SciPy's HiGHS (larger ones).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
from scipy.optimize import linprog

MIN_CELL = 3
ADDITIVE = ["claims", "sum_egenandel", "sum_refusjon"]

Key = tuple


def margin_equations(keys: list[Key]) -> Iterator[tuple[Key, list[Key]]]:
    """(parent, children) for every row with a null dimension that has rows under it."""
    present = set(keys)
    for parent in keys:
        for d, value in enumerate(parent):
            if value is None:
                children = [
                    k for k in present if k[:d] == parent[:d] and k[d + 1 :] == parent[d + 1 :] and k[d] is not None
                ]
                if children:
                    yield parent, children


def attacker_view(table: pa.Table, dims: list[str], measure: str) -> tuple[list[Key], dict[Key, float], list[Key]]:
    rows = table.to_pylist()
    keys = [tuple(r[d] for d in dims) for r in rows]
    shown = {k: r[measure] for k, r in zip(keys, rows, strict=True) if not r["suppressed"]}
    hidden = [k for k, r in zip(keys, rows, strict=True) if r["suppressed"]]
    return keys, shown, hidden


def lp_intervals(table: pa.Table, dims: list[str], measure: str) -> dict[Key, tuple[float, float]]:
    """For each suppressed cell, the least and greatest value any solution of the table allows."""
    keys, shown, hidden = attacker_view(table, dims, measure)
    if not hidden:
        return {}
    index = {k: i for i, k in enumerate(hidden)}
    rows, rhs = [], []
    for parent, children in margin_equations(keys):
        coefficients = np.zeros(len(hidden))
        constant = 0.0
        for member, sign in [(parent, 1.0), *[(c, -1.0) for c in children]]:
            if member in index:
                coefficients[index[member]] += sign
            else:
                constant += sign * shown[member]
        if coefficients.any():
            rows.append(coefficients)
            rhs.append(-constant)
    out = {}
    for key, i in index.items():
        bounds = []
        for direction in (1.0, -1.0):
            objective = np.zeros(len(hidden))
            objective[i] = direction
            result = linprog(
                objective,
                A_eq=np.array(rows) if rows else None,
                b_eq=np.array(rhs) if rows else None,
                bounds=(0, None),
                method="highs",
            )
            assert result.status in (0, 3), result.message  # solved, or unbounded
            bounds.append(direction * result.fun if result.status == 0 else float("inf"))
        out[key] = (bounds[0], bounds[1])
    return out


def integer_values(table: pa.Table, dims: list[str], ceiling: int) -> dict[Key, set[int]]:
    """Every value each suppressed `claims` cell takes over all integer solutions in [0, ceiling]:
    branch on one free cell at a time, and let every margin with one unknown member fix it."""
    keys, shown, hidden = attacker_view(table, dims, "claims")
    equations = [[(parent, 1), *[(c, -1) for c in children]] for parent, children in margin_equations(keys)]
    values: dict[Key, set[int]] = {k: set() for k in hidden}

    def propagate(assigned: dict[Key, int]) -> dict[Key, int] | None:
        changed = True
        while changed:
            changed = False
            for equation in equations:
                known = {**shown, **assigned}
                unknown = [(m, sign) for m, sign in equation if m not in known]
                total = sum(sign * known[m] for m, sign in equation if m in known)
                if not unknown and total != 0:
                    return None
                if len(unknown) == 1:
                    member, sign = unknown[0]
                    value = -total * sign
                    if not 0 <= value <= ceiling:
                        return None
                    assigned = {**assigned, member: value}
                    changed = True
        return assigned

    def search(assigned: dict[Key, int]) -> None:
        fixed = propagate(assigned)
        if fixed is None:
            return
        free = [k for k in hidden if k not in fixed]
        if not free:
            for k, v in fixed.items():
                values[k].add(v)
            return
        for value in range(ceiling + 1):
            search({**fixed, free[0]: value})

    search({})
    return values


def assert_no_value_pinned(table: pa.Table, dims: list[str]) -> None:
    for measure in ADDITIVE:
        for key, (low, high) in lp_intervals(table, dims, measure).items():
            assert high - low > 1e-6, f"{measure} of {key} is pinned to {low}"


def assert_shown_cells_exact_and_large(raw: pa.Table, out: pa.Table) -> None:
    for before, after in zip(raw.to_pylist(), out.to_pylist(), strict=True):
        if after["suppressed"]:
            assert all(after[m] is None for m in ["persons", *ADDITIVE])
        else:
            assert after["persons"] == 0 or after["persons"] >= MIN_CELL
            assert all(after[m] == before[m] for m in ["persons", *ADDITIVE])
        if 0 < before["persons"] < MIN_CELL:
            assert after["suppressed"]


def assert_no_value_pinned_for_insiders(raw: pa.Table, out: pa.Table, dims: list[str], measure: str = "claims") -> None:
    """The insider: the single person of a suppressed one-person cell knows that cell's values,
    so to him it is shown. Cells holding that same person (one-person cells that overlap his:
    their common refinement has a row) are his own and not counted."""
    truth = raw.to_pylist()
    keys = [tuple(r[d] for d in dims) for r in truth]
    persons = {k: r["persons"] for k, r in zip(keys, truth, strict=True)}
    flags = out.column("suppressed").to_pylist()
    for row, key in enumerate(keys):
        if not (flags[row] and persons[key] == 1):
            continue
        known = out.set_column(
            out.schema.get_field_index(measure),
            measure,
            pa.array([truth[row][measure] if i == row else v for i, v in enumerate(out.column(measure).to_pylist())]),
        ).set_column(
            out.schema.get_field_index("suppressed"),
            "suppressed",
            pa.array([f and i != row for i, f in enumerate(flags)]),
        )
        for other, (low, high) in lp_intervals(known, dims, measure).items():
            if _same_person(other, key, persons):
                continue
            assert high - low > 1e-6, f"{measure} of {other} is pinned to {low} for the person of {key}"


def _same_person(cell: Key, single: Key, persons: dict[Key, int]) -> bool:
    if persons[cell] != 1 or any(a is not None and b is not None and a != b for a, b in zip(cell, single, strict=True)):
        return False
    common = tuple(a if a is not None else b for a, b in zip(cell, single, strict=True))
    return persons.get(common, 0) >= 1
