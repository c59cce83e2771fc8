"""Secondary suppression by hypercubes: a pattern that carries its own proof, at national scale.

The table is every cell and margin of a cube, so along each dimension a margin is the sum of its
children. Take a suppressed cell q and, in every dimension i, a partner value b_i ≠ q_i; the 2^d
cells whose coordinates are q_i or b_i are the corners of a hypercube. Adding +δ/−δ to the
corners by the rule "a pair of two values takes opposite signs, a pair of a value and its margin
(the total) the same sign", multiplied over the dimensions, keeps every margin equation true (per
dimension it is a direction in the null space of "total − Σ children = 0", and the tensor product
of those is in the null space of them all). When every corner is suppressed, no shown value
changes: the attacker who solves the whole table cannot tell δ = 0 from a small δ ≠ 0, so no
corner is pinned. The bounds (cells ≥ 0) allow a small δ when the corners whose value is 0 all
have one sign (every present cell has a claim, so `claims` never is 0). The insider who is the
single person of a suppressed cell s knows s: a hypercube without s as a corner still moves q.

So a hypercube is a certificate, checked on its own (disclosure.proof), and the search below
(after τ-ARGUS' hypercube method) gives every suppressed cell one, and one that avoids each
single-person cell that would otherwise be known to an insider: the cheapest per cell (fewest
persons newly suppressed, then fewest single-person corners, then claims), among a few candidate
partners per dimension. It is local — each cell looks only along its own lines — so a 100 000-cell
table takes seconds, where solving the whole system (disclosure.audit) does not scale. One always
exists: q with its margins (partner "total" in every dimension; a child where q is the total).
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

Key = tuple[object, ...]
CANDIDATE_COMBINATIONS = 256  # partners tried per cell in a large table: (k + 1) ** d at most
ALL_PARTNERS_LIMIT = 4096  # hypercubes through a cell up to which all are tried


@dataclass
class Grid:
    """The cube as dense arrays over every coordinate combination (the last index of a dimension
    is its total); cells of the table are `rows`, flat positions in that grid."""

    shape: tuple[int, ...]
    rows: np.ndarray  # table row → flat position
    present: np.ndarray  # per position: a cell of the table
    persons: np.ndarray
    claims: np.ndarray
    values: dict[str, np.ndarray]  # additive measures whose zeros the bounds can pin

    @classmethod
    def of(
        cls, keys: Sequence[Key], persons: Sequence[int], claims: Sequence[int], values: Mapping[str, Sequence[float]]
    ) -> Grid:
        dims = len(keys[0]) if keys else 0
        levels = [sorted({k[d] for k in keys if k[d] is not None}, key=repr) for d in range(dims)]
        index = [{v: i for i, v in enumerate(level)} for level in levels]
        shape = tuple(len(level) + 1 for level in levels)
        coordinates = np.array(
            [[index[d][k[d]] if k[d] is not None else shape[d] - 1 for d in range(dims)] for k in keys], dtype=np.int64
        ).reshape(len(keys), dims)
        rows = np.zeros(len(keys), dtype=np.int64)
        if dims:
            rows = np.asarray(np.ravel_multi_index(tuple(coordinates.T), shape), dtype=np.int64)
        size = int(np.prod(shape)) if dims else 1

        def spread(column: Sequence[float], dtype: type) -> np.ndarray:
            out: np.ndarray = np.zeros(size, dtype=dtype)
            out[rows] = column
            return out

        present = np.zeros(size, dtype=bool)
        present[rows] = True
        return cls(
            shape,
            rows,
            present,
            spread(persons, np.int64),
            spread(claims, np.int64),
            {m: spread(v, np.float64) for m, v in values.items()},
        )


@dataclass(frozen=True)
class Protection:
    hidden: np.ndarray  # per table row
    certificates: list[np.ndarray]  # each: its corners as table rows


def protect(grid: Grid, primary: np.ndarray) -> Protection:
    """Suppress more cells until every suppressed one is a corner of an all-suppressed hypercube,
    and, for each single-person cell s, of one without s (unless it is s's own person)."""
    hidden = np.zeros(grid.present.shape, dtype=bool)
    hidden[grid.rows[primary]] = True
    if len(grid.shape) == 0:
        return Protection(primary.copy(), [])
    search = _Search(grid, hidden)
    queue = deque(int(p) for p in np.flatnonzero(hidden))
    while queue:
        cell = queue.popleft()
        threats = search.threats(cell)
        if threats is not None and not threats:
            continue
        corners = search.best(cell, threats or set())
        if corners is None:  # nothing cheaper is sound: no cell shown, nothing to solve with
            return Protection(np.ones(len(grid.rows), dtype=bool), [])
        search.certify(corners)
        queue.extend(int(c) for c in corners)
    row_of = {int(position): row for row, position in enumerate(grid.rows)}
    return Protection(
        hidden[grid.rows], [np.array([row_of[int(c)] for c in corners]) for corners in search.certificates]
    )


class _Search:
    def __init__(self, grid: Grid, hidden: np.ndarray) -> None:
        self.grid = grid
        self.hidden = hidden
        self.single = grid.present & (grid.persons == 1)
        self.certificates: list[np.ndarray] = []
        self._of: dict[int, list[int]] = {}  # position → its certificates
        dims = len(grid.shape)
        self._per_dimension = max(1, round(CANDIDATE_COMBINATIONS ** (1 / dims)) - 1)
        self._subsets = np.array(list(itertools.product([0, 1], repeat=dims)), dtype=bool)  # corner → uses b_i

    def threats(self, cell: int) -> set[int] | None:
        """None: no certificate yet. Else the single-person cells every certificate has as a
        corner (an insider who is one of them could solve this cell): empty when it is safe."""
        mine = self._of.get(cell)
        if not mine:
            return None
        common: set[int] | None = None
        for number in mine:
            singles = {int(c) for c in self.certificates[number] if self.single[c] and c != cell}
            common = singles if common is None else common & singles
            if not common:
                return set()
        return {s for s in common or set() if not self._same_person(cell, s)}

    def _same_person(self, cell: int, single: int) -> bool:
        """A one-person cell overlapping `single` (their common refinement has someone in it)."""
        if not self.single[cell]:
            return False
        a = np.unravel_index(cell, self.grid.shape)
        b = np.unravel_index(single, self.grid.shape)
        totals = [n - 1 for n in self.grid.shape]
        common = []
        for x, y, total in zip(a, b, totals, strict=True):
            if x != total and y != total and x != y:
                return False
            common.append(x if x != total else y)
        return bool(self.grid.present[np.ravel_multi_index(common, self.grid.shape)])

    def certify(self, corners: np.ndarray) -> None:
        self.hidden[corners] = True
        number = len(self.certificates)
        self.certificates.append(corners)
        for corner in corners:
            self._of.setdefault(int(corner), []).append(number)

    def best(self, cell: int, avoid: set[int]) -> np.ndarray | None:
        """The cheapest valid hypercube with `cell` as a corner and none of `avoid`: among all
        partners where they are few, else among a few per dimension, then all if none of those."""
        origin = np.array(np.unravel_index(cell, self.grid.shape))
        every = [self._partners(origin, d, None) for d in range(len(self.grid.shape))]
        if any(len(p) == 0 for p in every):
            return None
        if np.prod([len(p) for p in every]) > ALL_PARTNERS_LIMIT:
            few = [self._partners(origin, d, self._per_dimension) for d in range(len(self.grid.shape))]
            corners = self._cheapest(cell, origin, few, avoid)
            if corners is not None:
                return corners
        return self._cheapest(cell, origin, every, avoid)

    def _cheapest(
        self, cell: int, origin: np.ndarray, partners: list[np.ndarray], avoid: set[int]
    ) -> np.ndarray | None:
        grid = self.grid
        combos = np.array(list(itertools.product(*partners)), dtype=np.int64)  # (c, d)
        coords = np.where(self._subsets[None, :, :], combos[:, None, :], origin[None, None, :])  # (c, 2^d, d)
        corners = np.ravel_multi_index(tuple(np.moveaxis(coords, -1, 0)), grid.shape)  # (c, 2^d)
        total = np.array(grid.shape) - 1
        # per dimension: −1 where the pair is two values and the corner takes the partner
        flips = self._subsets[None, :, :] & (combos[:, None, :] != total) & (origin != total)[None, None, :]
        signs = np.where(flips.sum(axis=2) % 2 == 1, -1, 1)
        valid = grid.present[corners].all(axis=1)
        if avoid:
            valid &= ~np.isin(corners, list(avoid)).any(axis=1)
        for measure in grid.values.values():
            zero = measure[corners] == 0
            valid &= ~((zero & (signs > 0)).any(axis=1) & (zero & (signs < 0)).any(axis=1))
        if not valid.any():
            return None
        new = ~self.hidden[corners]
        added_persons = (grid.persons[corners] * new).sum(axis=1)
        singles = (self.single[corners] & (corners != cell)).sum(axis=1)
        added_claims = (grid.claims[corners] * new).sum(axis=1)
        candidates = np.flatnonzero(valid)
        order = np.lexsort((added_claims[candidates], singles[candidates], added_persons[candidates]))
        return corners[candidates[order[0]]]

    def _partners(self, origin: np.ndarray, dimension: int, per_dimension: int | None) -> np.ndarray:
        """Values to pair with the cell's own in one dimension: present cells of its line, the
        suppressed ones first, then by persons; the margin (total) always among them."""
        grid = self.grid
        total = grid.shape[dimension] - 1
        line = np.repeat(origin[None, :], total + 1, axis=0)
        line[:, dimension] = np.arange(total + 1)
        positions = np.ravel_multi_index(tuple(line.T), grid.shape)
        values = np.flatnonzero(grid.present[positions] & (np.arange(total + 1) != origin[dimension]))
        if per_dimension is None or len(values) <= per_dimension:
            return values
        children = values[values != total]
        order = np.lexsort((grid.persons[positions[children]], ~self.hidden[positions[children]]))
        chosen = children[order[:per_dimension]]
        return np.append(chosen, total) if total in values else chosen
