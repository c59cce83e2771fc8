"""The leak guard: does any value contain a national id, its digits written together or apart?

Runs on every delivered string column except the pseudonyms (which must match `^[0-9a-f]{32}$`)
and the claim's own identifier, free text included. An id typed by hand may carry separators
(`DDMMYY IIIKK`, `DDMMYY-IIIKK`, `DD.MM.YY IIIKK`): eleven digits with at most a separator
(optional spaces around one of `.`, `/`, `-`) between any two of them are a candidate. A cheap
Arrow regex finds the few candidate values; only those are taken apart, their digits joined,
and every 11-digit window checked with the validator the source scan uses (both check digits and
a date, D- and H-numbers included; synthetic test numbers count as ids here: they look like
one), so that amounts and other ordinary numbers do not trip it.
"""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kuhr_pipeline.identity.fodselsnummer import IdReason, check_ids

_SEPARATOR = r"\s*[./-]?\s*"
_CANDIDATE = rf"[0-9](?:{_SEPARATOR}[0-9]){{10}}"  # RE2 and Python alike
_DIGITS_APART = re.compile(rf"[0-9](?:{_SEPARATOR}[0-9])*")


def _windows(text: str) -> list[str]:
    """Every 11 consecutive digits of each run of digits written together or apart."""
    runs = ["".join(ch for ch in match if ch.isdigit()) for match in _DIGITS_APART.findall(text)]
    return [run[i : i + 11] for run in runs for i in range(len(run) - 10)]


def holds_fodselsnummer(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Per value: True where it contains something that validates as a fødselsnummer."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        values = pc.cast(values, pa.string())
    out = np.zeros(len(values), dtype=bool)
    candidates = np.flatnonzero(
        pc.fill_null(pc.match_substring_regex(values, _CANDIDATE), False).to_numpy(zero_copy_only=False)
    )
    for row in candidates.tolist():
        windows = _windows(values[row].as_py())
        reasons = check_ids(pa.array(windows, pa.string())).reason
        out[row] = bool(np.isin(reasons, (IdReason.VALID, IdReason.SYNTHETIC)).any())
    return out
