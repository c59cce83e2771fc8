"""The insider: the single person of a suppressed one-person cell, who knows that cell's values.
What he learns about a cell that holds himself is his own, so it does not count against the table."""

from __future__ import annotations

from collections.abc import Mapping

Key = tuple[object, ...]


def same_person(cell: Key, single: Key, persons: Mapping[Key, int]) -> bool:
    """Whether a one-person `cell` holds the person of the one-person cell `single`: they overlap
    (no dimension tells them apart, and their common refinement is a cell with someone in it)."""
    if persons.get(cell) != 1 or any(
        a is not None and b is not None and a != b for a, b in zip(cell, single, strict=True)
    ):
        return False
    common = tuple(a if a is not None else b for a, b in zip(cell, single, strict=True))
    return persons.get(common, 0) >= 1
