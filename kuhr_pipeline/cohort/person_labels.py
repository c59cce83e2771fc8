"""Small per-run numbers for persons, so that only pass 1 handles national ids.

Each valid id pass 1 meets gets a label: 1, 2, 3 …, a new id the next free one (0 stands for
"no valid id"). A label means nothing outside the run that gave it: the table from labels back
to ids lives only in this process's memory, and is used once, to pseudonymise the cohort.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

NO_PERSON = 0
_MIN_RECENT = 65_536  # ids kept in the small index before both are merged


class PersonLabels:
    """Labels for ids (as int64 numbers), with each id's label found by hash lookups.

    Two hash indexes: a large one, rebuilt only when the small one of recent arrivals exceeds a
    quarter of it, so rebuilding costs a few passes over all ids in total, not one per batch
    (memory: about 50 bytes per person at the peak, measured)."""

    def __init__(self) -> None:
        self._numbers = np.zeros(_MIN_RECENT, dtype=np.int64)  # label − 1 → id
        self._count = 0
        self._indexed = 0  # ids in the large index: the first `_indexed` of `_numbers`
        self._large = _index(self._numbers[:0])
        self._recent = _index(self._numbers[:0])

    def __len__(self) -> int:
        return self._count

    def label(self, numbers: np.ndarray) -> np.ndarray:
        """int32 labels of ids, giving the next free labels to ids not seen before."""
        position = self._large.get_indexer(numbers)
        unseen = np.flatnonzero(position < 0)
        if len(unseen):
            recent = self._recent.get_indexer(numbers[unseen])
            found = recent >= 0
            position[unseen[found]] = self._indexed + recent[found]
            new = unseen[~found]
            if len(new):
                first_seen, repeats = np.unique(numbers[new], return_inverse=True)
                position[new] = self._append(first_seen)[repeats]
        return (position + 1).astype(np.int32)

    def numbers(self, labels: np.ndarray) -> np.ndarray:
        """The ids (as numbers) of these labels."""
        return self._numbers[labels.astype(np.int64) - 1]

    def _append(self, numbers: np.ndarray) -> np.ndarray:
        start, end = self._count, self._count + len(numbers)
        if end > len(self._numbers):
            grown = np.zeros(max(end, 2 * len(self._numbers)), dtype=np.int64)
            grown[:start] = self._numbers[:start]
            self._numbers = grown
        self._numbers[start:end] = numbers
        self._count = end
        if end - self._indexed > max(self._indexed // 4, _MIN_RECENT):
            self._large, self._indexed = _index(self._numbers[:end]), end
            self._recent = _index(self._numbers[:0])
        else:
            self._recent = _index(self._numbers[self._indexed : end])
        return np.arange(start, end)


class LabelSet:
    """A set of labels as a growable mask (one byte per person)."""

    def __init__(self) -> None:
        self._mask = np.zeros(_MIN_RECENT, dtype=bool)

    def add(self, labels: np.ndarray) -> None:
        if not len(labels):
            return
        highest = int(labels.max())
        if highest >= len(self._mask):
            self._mask = np.concatenate([self._mask, np.zeros(max(highest + 1, len(self._mask)), dtype=bool)])
        self._mask[labels] = True

    def contains(self, labels: np.ndarray) -> np.ndarray:
        """Per label: whether it is in the set."""
        inside = labels < len(self._mask)
        found = np.zeros(len(labels), dtype=bool)
        found[inside] = self._mask[labels[inside]]
        return found


def _index(numbers: np.ndarray) -> pd.Index:
    """A hash index over distinct ids: `get_indexer` gives each query's position, or −1."""
    return pd.Index(numbers, dtype=np.int64, copy=True)
