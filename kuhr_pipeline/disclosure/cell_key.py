"""The cell key method for counts that answer open questions (estimates).

Each person gets a fixed record key in [0, 1): the first 64 bits of HMAC-SHA256 over their id,
keyed by a key derived from the pseudonym master key (HKDF, its own salt), so the same person has
the same record key in every estimate and no one without the master key can compute it. A
count's cell key is the fractional part of the sum of its persons' record keys. The count's
deviation is looked up in a fixed perturbation table by the count and the cell key; the
perturbed count is then masked below the threshold and rounded to 5.

So the same question gets the same answer (the same persons, the same cell key), and two
questions whose answers differ by one person have unrelated deviations: subtracting two answers
does not give that person's count. The table (docs/design.md, "Estimates"): unbiased, at most ±2,
variance ½ from a count of 2 on; a zero stays zero and no count goes below zero.
"""

from __future__ import annotations

import hmac
from bisect import bisect_right

import numpy as np
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SALT = b"kuhr-pipeline/record-key/v1"
MAX_DEVIATION = 2
# count → (deviation, probability) in order; counts above the last row use the last row
PERTURBATION_TABLE: dict[int, tuple[tuple[int, float], ...]] = {
    0: ((0, 1.0),),
    1: ((-1, 0.25), (0, 0.5), (1, 0.25)),
    2: ((-2, 0.05), (-1, 0.2), (0, 0.5), (1, 0.2), (2, 0.05)),
}


class RecordKeys:
    """Record keys of persons held as id numbers (int64, see identity.fodselsnummer); the derived
    key is never shown."""

    __slots__ = ("_key",)

    def __init__(self, master_key: bytes) -> None:
        self._key = HKDF(algorithm=hashes.SHA256(), length=32, salt=SALT, info=b"").derive(master_key)

    def __repr__(self) -> str:
        return "RecordKeys(<key hidden>)"

    def of(self, numbers: np.ndarray) -> np.ndarray:
        key = self._key
        top = [int.from_bytes(hmac.digest(key, b"%011d" % n, "sha256")[:8], "big") for n in numbers.tolist()]
        return np.array(top, dtype=np.float64) / 2.0**64


class CellKeys:
    """Cell keys of sets of persons, each a subset of `everyone` (hashed once, looked up after)."""

    def __init__(self, record_keys: RecordKeys, everyone: np.ndarray) -> None:
        self._numbers = np.unique(everyone)
        self._keys = record_keys.of(self._numbers)

    def of(self, persons: np.ndarray) -> float:
        where = np.searchsorted(self._numbers, persons)
        return float(np.modf(float(np.sum(self._keys[where], dtype=np.float64)))[0])


def deviation(count: int, cell_key: float) -> int:
    """The perturbation table's deviation for a count at a cell key in [0, 1)."""
    row = PERTURBATION_TABLE[min(count, max(PERTURBATION_TABLE))]
    bounds, total = [], 0.0
    for _, probability in row:
        total += probability
        bounds.append(total)
    index = min(bisect_right(bounds, cell_key), len(row) - 1)
    return row[index][0]


def perturbed(count: int, cell_key: float) -> int:
    return max(0, count + deviation(count, cell_key))
