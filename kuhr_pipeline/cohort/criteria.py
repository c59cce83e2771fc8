"""Whether a claim matches a spec's `entry` or `exclude` criteria, as a mask over a record batch.

A claim matches when every given field matches; a field matches when any of the claim's codes
equals a listed code or starts with a listed prefix (`J0*`). List columns (diagnoses, fee codes)
match when any element does. Diagnoses given per code system match through the list of the
claim's own `diagnosekodeverk`.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kuhr_pipeline.application.model import Criteria

COLUMN_OF = {
    "diagnoses": "diagnosekoder",
    "praksistyper": "behandler_praksistype",
    "takster": "takstkoder",
    "regning_status": "regning_status",
}


SYSTEM_COLUMN = "diagnosekodeverk"


def columns_for(criteria: Criteria | None) -> set[str]:
    if criteria is None:
        return set()
    columns = {COLUMN_OF[name] for name in criteria.given}
    if criteria.diagnoses_by_system:
        columns |= {COLUMN_OF["diagnoses"], SYSTEM_COLUMN}
    return columns


def codes_match(values: pa.Array, patterns: list[str]) -> np.ndarray:
    """Element-wise: the value equals an exact code or starts with a prefix (`X*`). Nulls never match.

    Dictionary-encoded values are matched on their dictionary, a few hundred codes, not per row."""
    if pa.types.is_dictionary(values.type):
        on_dictionary = np.append(codes_match(values.dictionary, patterns), False)  # the last: nulls
        return on_dictionary[pc.fill_null(values.indices, len(values.dictionary)).to_numpy()]
    exact = [p for p in patterns if not p.endswith("*")]
    prefixes = [p[:-1] for p in patterns if p.endswith("*")]
    hit = np.zeros(len(values), dtype=bool)
    if exact:
        hit |= pc.fill_null(pc.is_in(values, value_set=pa.array(exact, values.type)), False).to_numpy(
            zero_copy_only=False
        )
    for prefix in prefixes:
        hit |= pc.fill_null(pc.starts_with(values, prefix), False).to_numpy(zero_copy_only=False)
    return hit


class _ColumnHits:
    """Row masks of one batch's columns against lists of codes, each list column flattened once
    and each (column, codes) matched once, however many criteria ask."""

    def __init__(self, batch: pa.RecordBatch | pa.Table) -> None:
        self.batch = batch
        self._flat: dict[str, tuple[pa.Array, np.ndarray]] = {}
        self._hits: dict[tuple[str, tuple[str, ...]], np.ndarray] = {}

    def rows(self, name: str, patterns: list[str]) -> np.ndarray:
        key = (name, tuple(patterns))
        if key not in self._hits:
            self._hits[key] = self._match(name, patterns)
        return self._hits[key]

    def _match(self, name: str, patterns: list[str]) -> np.ndarray:
        column = _whole(self.batch.column(name))
        if not (pa.types.is_list(column.type) or pa.types.is_large_list(column.type)):
            return codes_match(column, patterns)
        if name not in self._flat:
            self._flat[name] = (pc.list_flatten(column), pc.list_parent_indices(column).to_numpy())
        flat, parents = self._flat[name]
        element_hit = codes_match(flat, patterns)
        rows = np.zeros(len(column), dtype=bool)
        rows[parents[element_hit]] = True
        return rows


def match(batch: pa.RecordBatch | pa.Table, criteria: Criteria | None) -> np.ndarray:
    """Row mask of claims matching every given field; all False when there are no criteria."""
    return match_each(batch, [criteria])[0]


def match_each(batch: pa.RecordBatch | pa.Table, each: list[Criteria | None]) -> list[np.ndarray]:
    """`match` for several criteria over one batch (entry and exclusion), sharing the work."""
    hits = _ColumnHits(batch)
    return [_match(hits, criteria) for criteria in each]


def _match(hits: _ColumnHits, criteria: Criteria | None) -> np.ndarray:
    if criteria is None:
        return np.zeros(hits.batch.num_rows, dtype=bool)
    mask = np.ones(hits.batch.num_rows, dtype=bool)
    for name, patterns in criteria.given.items():
        mask &= hits.rows(COLUMN_OF[name], patterns)
    if criteria.diagnoses_by_system:
        mask &= _diagnoses_in_their_system(hits, criteria.diagnoses_by_system)
    return mask


def _diagnoses_in_their_system(hits: _ColumnHits, by_system: dict[str, list[str]]) -> np.ndarray:
    """A claim's diagnoses match through the list of the claim's own code system only."""
    hit = np.zeros(hits.batch.num_rows, dtype=bool)
    for system, patterns in by_system.items():
        in_system = hits.rows(SYSTEM_COLUMN, [system])
        if in_system.any():
            hit |= in_system & hits.rows(COLUMN_OF["diagnoses"], patterns)
    return hit


def _whole(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
