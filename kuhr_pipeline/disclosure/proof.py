"""The proof a statistics table holds, checked on the delivered table before it is published.

The suppression hands over its hypercubes (disclosure.hypercubes); this module trusts none of
its reasoning and checks each one against the delivered table and the cube's true values: the
2^d corners form a hypercube (two values per dimension, every combination), every corner is
suppressed, and the direction that moves the corners (sign − for the partner of a pair of two
values, + where a pair has the margin) can move each additive measure both ways or one way (the
corners whose value is 0 share one sign). Then every suppressed cell is a corner of a valid one
(the attacker who solves the whole table cannot pin it), and, for each suppressed one-person
cell s other than its own person's, of a valid one without s (the insider who knows s cannot).

A valid hypercube moves its corners within [−min of the + corners, min of the − corners]: the
width of that range is a lower bound of each corner's interval, reported per measure as the
smallest width over all suppressed cells (the exact interval is the linear programme's, which
disclosure.audit solves for small tables).
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from kuhr_pipeline.disclosure.insider import same_person

ADDITIVE = ("claims", "sum_egenandel", "sum_refusjon")
Key = tuple[object, ...]


@dataclass
class Proof:
    cells: int
    suppressed: int
    unprotected: list[Key] = field(default_factory=list)  # pinned for all the proof can show
    exposed_to_an_insider: list[Key] = field(default_factory=list)
    smallest_width: dict[str, float] = field(default_factory=dict)  # per delivered additive measure
    seconds: float = 0.0

    @property
    def holds(self) -> bool:
        return not self.unprotected and not self.exposed_to_an_insider

    def merged(self, other: Proof | None) -> Proof:
        """Both proofs' findings; this one's widths (the programme's are exact, not bounds)."""
        if other is None:
            return self
        self.unprotected = sorted({*self.unprotected, *other.unprotected}, key=repr)
        self.exposed_to_an_insider = sorted({*self.exposed_to_an_insider, *other.exposed_to_an_insider}, key=repr)
        self.seconds += other.seconds
        return self

    def figures(self) -> dict[str, Any]:
        """For the disclosure report and the run's metadata: counts and widths, never values."""
        return {
            "cells": self.cells,
            "suppressed": self.suppressed,
            "suppressed_without_proof": len(self.unprotected),
            "suppressed_exposed_to_an_insider": len(self.exposed_to_an_insider),
            "smallest_interval_width_at_least": {
                m: ("unbounded" if math.isinf(w) else round(w, 2)) for m, w in self.smallest_width.items()
            },
            "proof_seconds": round(self.seconds, 2),
        }


def prove(delivered: pa.Table, cube: pa.Table, dimensions: list[str], certificates: list[np.ndarray]) -> Proof:
    """Check the hypercubes on `delivered` (rows in the order of `cube`, the values before suppression)."""
    started = time.perf_counter()
    keys: list[Key] = list(zip(*(delivered.column(d).to_pylist() for d in dimensions), strict=True))
    if keys != list(zip(*(cube.column(d).to_pylist() for d in dimensions), strict=True)):
        raise ValueError("the delivered table's rows are not the cube's")
    hidden = np.array(delivered.column("suppressed").to_pylist(), dtype=bool)
    measures = [m for m in ADDITIVE if m in delivered.column_names]
    values = {m: cube.column(m).to_numpy().astype(np.float64) for m in measures}
    persons = cube.column("persons").to_numpy()
    proof = Proof(cells=len(keys), suppressed=int(hidden.sum()))
    if not dimensions or hidden.all():  # no equation, or nothing shown to solve with
        proof.smallest_width = {m: math.inf for m in measures} if hidden.any() else {}
        proof.seconds = time.perf_counter() - started
        return proof

    width = {m: np.zeros(len(keys)) for m in measures}
    valid_of: dict[int, list[np.ndarray]] = {}
    for corners in certificates:
        signs = _signs(corners, keys, len(dimensions))
        if signs is None or not hidden[corners].all():
            continue
        spans = {m: _span(values[m][corners], signs) for m in measures}
        if any(span <= 0 for span in spans.values()):
            continue
        for m, span in spans.items():
            width[m][corners] = np.maximum(width[m][corners], span)
        for corner in corners:
            valid_of.setdefault(int(corner), []).append(corners)

    single = hidden & (persons == 1)
    persons_of = dict(zip(keys, persons.tolist(), strict=True))
    for row in np.flatnonzero(hidden):
        mine = valid_of.get(int(row))
        if not mine:
            proof.unprotected.append(keys[row])
            continue
        common = set.intersection(*({int(c) for c in corners if single[c] and c != row} for corners in mine))
        if any(not same_person(keys[row], keys[s], persons_of) for s in common):
            proof.exposed_to_an_insider.append(keys[row])
    proof.smallest_width = {m: float(width[m][hidden].min()) for m in measures} if hidden.any() else {}
    proof.seconds = time.perf_counter() - started
    return proof


def _signs(corners: np.ndarray, keys: list[Key], dims: int) -> np.ndarray | None:
    """Each corner's sign in the hypercube's direction; None when the corners are no hypercube."""
    points = [keys[int(c)] for c in corners]
    pairs = []
    for d in range(dims):
        values = list(dict.fromkeys(p[d] for p in points))
        if len(values) != 2:
            return None
        pairs.append(values)
    expected = set(itertools.product(range(2), repeat=dims))
    taken = {tuple(pairs[d].index(p[d]) for d in range(dims)) for p in points}
    if len(points) != 2**dims or taken != expected:
        return None
    signs = np.ones(len(points), dtype=np.int64)
    for d, (first, second) in enumerate(pairs):
        if first is None or second is None:
            continue  # a value and its margin move together
        signs *= np.array([1 if p[d] == first else -1 for p in points])
    return signs


def _span(values: np.ndarray, signs: np.ndarray) -> float:
    """How far δ can range with every corner ≥ 0: [−min of the + corners, min of the − corners]."""
    up = values[signs < 0].min(initial=math.inf)
    down = values[signs > 0].min(initial=math.inf)
    return float(up + down)


def prove_exactly(delivered: pa.Table, cube: pa.Table, dimensions: list[str]) -> Proof:
    """For a small table without hypercubes (disclosure.exact): the linear programme itself, once
    for the outsider and once per suppressed one-person cell with that cell known, and the
    narrowest interval per measure."""
    from kuhr_pipeline.disclosure.audit import (
        linked_groups,
        margin_equations,
        narrowest_intervals,
        pinned,
        pinned_cells,
        pinned_values,
    )
    from kuhr_pipeline.disclosure.equations import equations

    started = time.perf_counter()
    keys: list[Key] = list(zip(*(delivered.column(d).to_pylist() for d in dimensions), strict=True))
    flags = delivered.column("suppressed").to_pylist()
    hidden = {k for k, h in zip(keys, flags, strict=True) if h}
    proof = Proof(cells=len(keys), suppressed=len(hidden))
    whole = margin_equations((parent, children) for (parent, _), children in equations(keys).items())
    measures = [m for m in ADDITIVE if m in delivered.column_names]
    shown = {m: delivered.column(m).to_pylist() for m in measures}
    proof.unprotected = sorted({p.cell for p in pinned(delivered, dimensions, measures)}, key=repr)
    persons = cube.column("persons").to_pylist()
    truth = {m: cube.column(m).to_pylist() for m in measures}
    row_of = {key: row for row, key in enumerate(keys)}
    persons_of = dict(zip(keys, persons, strict=True))
    exposed: set[Key] = set()
    group_of = {cell: (cells, rules) for cells, rules in linked_groups(whole, hidden) for cell in cells}
    for row, key in enumerate(keys):
        if not (flags[row] and persons[row] == 1):
            continue
        cells, rules = group_of[key]  # only cells linked to his can change by what he knows
        others = set(cells) - {key}
        # The true values lie inside the bounds where none is 0: there the equations decide
        # (the null space); the programme runs only for measures with a suppressed 0.
        found = set(pinned_cells(rules, others))
        zero = [m for m in measures if any(truth[m][row_of[c]] == 0 for c in others)]
        known = {m: [truth[m][i] if i == row else v for i, v in enumerate(shown[m])] for m in zero}
        found |= {value.cell for value in pinned_values(keys, rules, others, known)}
        exposed |= {c for c in found if not same_person(c, key, persons_of)}
    proof.exposed_to_an_insider = sorted(exposed, key=repr)
    proof.smallest_width = narrowest_intervals(keys, whole, hidden, shown) if hidden else {}
    proof.seconds = time.perf_counter() - started
    return proof
