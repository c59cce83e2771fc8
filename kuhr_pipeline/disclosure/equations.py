"""The margin equations of a cube's table: each margin is the sum of its children along a dimension."""

from __future__ import annotations

from collections import defaultdict

Key = tuple[object, ...]


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
