"""Small per-scan-group numbers for persons, so that pass 2 never reads national ids.

Each valid id a scan group's pass 1 meets gets a label: 1, 2, 3 …, a new id the next free one (0
stands for "no valid id"). A label means nothing outside its group and run: the table from labels
back to ids is in pass 1's memory and, for the merge and the group's pass 2, in a sealed staging
file (cohort/select.py), used to pseudonymise the cohort's persons.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from kuhr_pipeline.identity.fodselsnummer import IdReason, id_numbers, id_slots

NO_PERSON = 0
_MIN_SIZE = 65_536
_EMPTY = -1  # a free slot's key: no valid id's number (id_numbers gives −1 for what is no number)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_KEY, _LABEL = 0, 1  # a slot's columns


class PersonLabels:
    """Labels for ids (as int64 numbers), each id's label found by hashing.

    An open-addressing hash table held in one NumPy array of (key, label) slots (linear probing,
    at most half full), looked up for a whole batch at once: every round is one gather of the
    slots the batch's ids hash to, so the loads of a batch overlap, where a hash table looked up
    id by id (pandas' `Int64HashTable`, used until 2026-12-03) waits for each cache miss in turn:
    half the time of pass 1's lookups (bench/README.md, eighth session). A slot's key and label
    lie side by side, so that finding both is one cache miss, not two (half the time of the
    gathers, eleventh session). Memory: 16 bytes a slot, 2 to 4 slots a person."""

    def __init__(self) -> None:
        self._numbers = np.zeros(_MIN_SIZE, dtype=np.int64)  # label − 1 → id
        self._count = 0
        self._bits = 17
        self._table = _empty_slots(self._bits)

    def __len__(self) -> int:
        return self._count

    def label(self, numbers: np.ndarray) -> np.ndarray:
        """int32 labels of ids, giving the next free labels to ids not seen before (in id order)."""
        numbers = numbers.astype(np.int64, copy=False)
        labels = self.find(numbers)
        new = np.flatnonzero(labels == NO_PERSON)
        if len(new):
            first_seen, repeats = np.unique(numbers[new], return_inverse=True)
            labels[new] = self._append(first_seen)[repeats]
        return labels

    def find(self, numbers: np.ndarray) -> np.ndarray:
        """int32 labels of ids seen before; NO_PERSON for the others (none is added)."""
        numbers = numbers.astype(np.int64, copy=False)
        slots = self._slots(numbers)
        looked = np.take(self._table, slots, axis=0)
        keys = looked[:, _KEY]
        found = np.where(keys == numbers, looked[:, _LABEL], NO_PERSON).astype(np.int32)
        probing = np.flatnonzero((keys != numbers) & (keys != _EMPTY))  # an empty slot ends a search
        while len(probing):
            slots[probing] = (slots[probing] + 1) & self._mask
            looked = np.take(self._table, slots[probing], axis=0)
            hit = looked[:, _KEY] == numbers[probing]
            found[probing[hit]] = looked[hit, _LABEL]
            probing = probing[~hit & (looked[:, _KEY] != _EMPTY)]
        return found

    def numbers(self, labels: np.ndarray) -> np.ndarray:
        """The ids (as numbers) of these labels."""
        return self._numbers[labels.astype(np.int64) - 1]

    @property
    def _mask(self) -> int:
        return (1 << self._bits) - 1

    def _slots(self, numbers: np.ndarray) -> np.ndarray:
        """Each id's first slot: Fibonacci hashing (the top bits of the id times 2⁶⁴/φ)."""
        return ((numbers.view(np.uint64) * _GOLDEN) >> np.uint64(64 - self._bits)).astype(np.int64)

    def _append(self, numbers: np.ndarray) -> np.ndarray:
        """Give distinct new ids the next labels; returns those labels."""
        start, end = self._count, self._count + len(numbers)
        if end > len(self._numbers):
            grown = np.zeros(max(end, 2 * len(self._numbers)), dtype=np.int64)
            grown[:start] = self._numbers[:start]
            self._numbers = grown
        self._numbers[start:end] = numbers
        self._count = end
        if 2 * end > len(self._table):  # at most half full: searches stay short
            while 2 * end > (1 << self._bits):
                self._bits += 1
            self._table = _empty_slots(self._bits)
            self._insert(self._numbers[:end], np.arange(1, end + 1, dtype=np.int32))
        else:
            self._insert(numbers, np.arange(start + 1, end + 1, dtype=np.int32))
        return np.arange(start + 1, end + 1, dtype=np.int32)

    def _insert(self, numbers: np.ndarray, labels: np.ndarray) -> None:
        """Put distinct ids not in the table yet into it: each round, the ids whose slot is free
        are written there (of several with one slot, one lands, whichever NumPy writes last); the
        others move on to the next slot."""
        slots = self._slots(numbers)
        waiting = np.arange(len(numbers))
        keys = self._table[:, _KEY]
        while len(waiting):
            free = waiting[keys[slots[waiting]] == _EMPTY]
            keys[slots[free]] = numbers[free]
            landed = free[keys[slots[free]] == numbers[free]]
            self._table[slots[landed], _LABEL] = labels[landed]
            placed = np.zeros(len(numbers), dtype=bool)
            placed[landed] = True
            waiting = waiting[~placed[waiting]]
            slots[waiting] = (slots[waiting] + 1) & self._mask


def _empty_slots(bits: int) -> np.ndarray:
    """A table of 2**bits free slots: (key, label) rows, keys _EMPTY, labels NO_PERSON."""
    slots = np.full((1 << bits, 2), NO_PERSON, dtype=np.int64)
    slots[:, _KEY] = _EMPTY
    return slots


def positions_among(sorted_numbers: np.ndarray, numbers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each of `numbers` stands in `sorted_numbers`, and whether it is there at all (where
    it is not, the position is a valid index that means nothing)."""
    at = np.searchsorted(sorted_numbers, numbers)
    known = at < len(sorted_numbers)
    known[known] = sorted_numbers[at[known]] == numbers[known]
    return np.minimum(at, max(len(sorted_numbers) - 1, 0)), known


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
