"""Whether a claim matches a spec's `entry` or `exclude` criteria, as a mask over a record batch.

A claim matches when every given field matches; a field matches when any of the claim's codes
equals a listed code or starts with a listed prefix (`J0*`). List columns (diagnoses, fee codes)
match when any element does. Diagnoses given per code system match through the list of the
bill's own `diagnosekodeverk`.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kuhr_pipeline.spec.model import Criteria

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


def _column_match(column: pa.Array | pa.ChunkedArray, patterns: list[str]) -> np.ndarray:
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
        flat = pc.list_flatten(column)
        element_hit = codes_match(flat, patterns)
        rows = np.zeros(len(column), dtype=bool)
        if element_hit.any():
            parents = pc.list_parent_indices(column).to_numpy()
            rows[parents[element_hit]] = True
        return rows
    return codes_match(column, patterns)


def match(batch: pa.RecordBatch | pa.Table, criteria: Criteria | None) -> np.ndarray:
    """Row mask of claims matching every given field; all False when there are no criteria."""
    if criteria is None:
        return np.zeros(batch.num_rows, dtype=bool)
    mask = np.ones(batch.num_rows, dtype=bool)
    for name, patterns in criteria.given.items():
        mask &= _column_match(batch.column(COLUMN_OF[name]), patterns)
    by_system = criteria.diagnoses_by_system
    if by_system:
        mask &= _diagnoses_in_their_system(batch, by_system)
    return mask


def _diagnoses_in_their_system(batch: pa.RecordBatch | pa.Table, by_system: dict[str, list[str]]) -> np.ndarray:
    """A bill's diagnoses match through the list of the bill's own code system only."""
    systems = batch.column(SYSTEM_COLUMN)
    diagnoses = batch.column(COLUMN_OF["diagnoses"])
    hit = np.zeros(batch.num_rows, dtype=bool)
    for system, patterns in by_system.items():
        in_system = codes_match(_whole(systems), [system])
        if in_system.any():
            hit |= in_system & _column_match(diagnoses, patterns)
    return hit


def _whole(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
