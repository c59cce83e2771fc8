"""Secondary suppression for small tables, by solving the whole system (disclosure.audit).

While some equation has exactly one suppressed member (recovered by subtraction), one more
member of it is suppressed. Then the whole system: while some suppressed cell is still fixed by
the equations taken together (the null space), is pinned at 0 by the bounds (a sum of 0: the
linear programme), or is fixed for the single person of a suppressed one-person cell, one more
cell of an equation it is in is suppressed: the shown one with the fewest persons, then claims.
In small sparse tables it can hide far less than hypercubes (which may need the grand total
where a line has few cells); in larger ones it is slower and often hides more (each round solves
the system again and adds a cell beside each exposed one). So it is tried only for tables of up
to EXACT_CELLS cells, and the lesser pattern is delivered (disclosure.suppression).
"""

from __future__ import annotations

from collections.abc import Mapping

from kuhr_pipeline.disclosure.audit import (
    Equation,
    PinnedValue,
    linked_groups,
    margin_equations,
    pinned_cells,
    pinned_values,
)
from kuhr_pipeline.disclosure.equations import equations
from kuhr_pipeline.disclosure.insider import same_person

Key = tuple[object, ...]


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
            or _exposed_to_an_insider(keys, whole, hidden, size, sums or {})
        )
        if not exposed:
            return hidden, primary
        added: set[Key] = set()
        for cell in dict.fromkeys(exposed):  # one more cell beside each exposed one, each round
            near = {m for equation in whole if any(m == cell for m, _ in equation) for m, _ in equation}
            if near & added:
                continue  # its neighbourhood changed this round: look again next round
            candidates = [m for m in near if m not in hidden] or [k for k in keys if k not in hidden]
            if not candidates:  # every cell hidden: nothing shown that anyone could solve with
                return hidden, primary
            added.add(min(candidates, key=lambda m: (*size[m], repr(m))))
        hidden |= added


def _exposed_to_an_insider(
    keys: list[Key],
    whole: list[Equation],
    hidden: set[Key],
    size: dict[Key, tuple[int, int]],
    sums: Mapping[str, list[float]],
) -> list[Key]:
    """Suppressed cells fixed for the single person of a suppressed one-person cell, who knows
    that cell's values (12 / 1 / 10 / 1 in a margin: each of the two 1s gives the other away):
    by the equations, or, where a suppressed sum is 0, by the bounds."""
    group_of = {cell: (cells, rules) for cells, rules in linked_groups(whole, hidden) for cell in cells}
    persons = {key: count for key, (count, _) in size.items()}
    for single in sorted((k for k in hidden if size[k][0] == 1), key=repr):
        cells, rules = group_of[single]  # only cells linked to his can change by what he knows
        known = set(cells) - {single}
        fixed = pinned_cells(rules, known) or [p.cell for p in _pinned_at_zero(keys, rules, known, sums)]
        exposed = [c for c in fixed if not same_person(c, single, persons)]
        if exposed:
            return exposed
    return []


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
