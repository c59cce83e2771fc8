"""Small per-run numbers for persons, so that only pass 1 handles national ids.

Each valid id pass 1 meets gets a label: 1, 2, 3 …, a new id the next free one (0 stands for
"no valid id"). A label means nothing outside the run that gave it: the table from labels back
to ids lives only in this process's memory, and is used once, to pseudonymise the cohort.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from pandas._libs.hashtable import Int64HashTable

from kuhr_pipeline.identity.fodselsnummer import IdReason, id_numbers, id_slots

NO_PERSON = 0
_MIN_SIZE = 65_536


class PersonLabels:
    """Labels for ids (as int64 numbers), each id's label found by one hash lookup.

    The hash table is pandas' own (the one behind `pd.Index.get_indexer`), used directly because
    it takes new keys in place: an Index is immutable, and keeping new ids in a second, rebuilt
    index cost twice as much in pass 1 (bench/README.md).
    Memory: about 40 bytes per person."""

    def __init__(self) -> None:
        self._numbers = np.zeros(_MIN_SIZE, dtype=np.int64)  # label − 1 → id
        self._count = 0
        self._positions = Int64HashTable(_MIN_SIZE)  # id → label − 1

    def __len__(self) -> int:
        return self._count

    def label(self, numbers: np.ndarray) -> np.ndarray:
        """int32 labels of ids, giving the next free labels to ids not seen before."""
        position = self._positions.lookup(numbers.astype(np.int64, copy=False))
        new = np.flatnonzero(position < 0)
        if len(new):
            first_seen, repeats = np.unique(numbers[new], return_inverse=True)
            position[new] = self._append(first_seen)[repeats]
        return (position + 1).astype(np.int32)

    def find(self, numbers: np.ndarray) -> np.ndarray:
        """int32 labels of ids seen before; NO_PERSON for the others (none is added)."""
        position = self._positions.lookup(numbers.astype(np.int64, copy=False))
        return np.where(position >= 0, position + 1, NO_PERSON).astype(np.int32)

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
        positions = np.arange(start, end, dtype=np.int64)
        self._positions.map_keys_to_values(numbers, positions)
        return positions


class LabelSet:
    """A set of labels as a growable mask (one byte per person)."""

    def __init__(self) -> None:
        self._mask = np.zeros(_MIN_SIZE, dtype=bool)

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


def claim_labels(ids: pa.Array, persons: PersonLabels, *, add: bool) -> tuple[np.ndarray, np.ndarray]:
    """Each claim's person label, NO_PERSON where the id is refused (`add`: new valid ids get the
    next free labels, else they stay NO_PERSON too); and the claims per IdReason.

    An id seen before is found by one hash lookup of its number (only valid ids have labels);
    only the others, new ids and refused ones, are checked, each distinct one once. In a source
    in time order a batch holds nearly as many persons as claims: checking each batch's distinct
    ids again cost three times the lookup."""
    labels = persons.find(id_numbers(ids))
    unknown = np.flatnonzero(labels == NO_PERSON)
    per_reason = np.zeros(len(IdReason), dtype=np.int64)
    per_reason[IdReason.VALID] = len(ids) - len(unknown)
    if len(unknown):
        slots = id_slots(ids.take(pa.array(unknown)))
        slot_labels = np.full(len(slots.reason), NO_PERSON, dtype=np.int32)
        valid = (slots.reason == IdReason.VALID) & (slots.rows > 0)
        slot_labels[valid] = (persons.label if add else persons.find)(slots.number[valid])
        labels[unknown] = slot_labels[slots.slot]
        per_reason += slots.rows_per_reason()
    return labels, per_reason
