"""The leak guard: does any value contain an 11-digit sequence that passes the fødselsnummer check?

Runs on every delivered string column except the pseudonyms (which must match `^[0-9a-f]{32}$`
and so cannot hold an 11-digit id), free text included. A cheap Arrow regex finds the few
candidate values; only those are examined window by window with the same validator the source
scan uses (synthetic test numbers count as ids here: they look like one).
"""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kuhr_pipeline.identity.fodselsnummer import IdReason, check_ids

_DIGIT_RUN = re.compile(r"[0-9]{11,}")


def _windows(text: str) -> list[str]:
    return [run[i : i + 11] for run in _DIGIT_RUN.findall(text) for i in range(len(run) - 10)]


def holds_fodselsnummer(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Per value: True where it contains something that validates as a fødselsnummer."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        values = pc.cast(values, pa.string())
    out = np.zeros(len(values), dtype=bool)
    candidates = np.flatnonzero(
        pc.fill_null(pc.match_substring_regex(values, r"[0-9]{11}"), False).to_numpy(zero_copy_only=False)
    )
    for row in candidates.tolist():
        windows = _windows(values[row].as_py())
        reasons = check_ids(pa.array(windows, pa.string())).reason
        out[row] = bool(np.isin(reasons, (IdReason.VALID, IdReason.SYNTHETIC)).any())
    return out
