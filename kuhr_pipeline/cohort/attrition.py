"""The person-level attrition table, in the contract's order, with small counts masked."""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

from kuhr_pipeline.disclosure.masking import SMALL_COUNT_THRESHOLD, mask_count
from kuhr_pipeline.identity.fodselsnummer import IdReason

ATTRITION_COLUMNS = {
    "step": "What the cohort selection did, in order",
    "persons": "Persons left after the step (text: a number, or <N for a small count)",
    "bills": "Bills dropped for an identity reason",
}


@dataclass(frozen=True)
class Attrition:
    """Counts as computed (in memory only); `table()` is what is persisted and shown."""

    steps: list[tuple[str, int]]
    dropped_claims: dict[IdReason, int] = field(default_factory=dict)
    threshold: int = SMALL_COUNT_THRESHOLD
    rounding: int = 1  # 5 in statistics deliveries (disclosure/masking.py)

    def masked(self, count: int) -> str:
        return mask_count(count, self.threshold, self.rounding)

    def dropped_rows(self) -> list[tuple[str, int]]:
        """Bills dropped for their ids, a row per reason: its step name and the exact count."""
        return [
            (f"bills dropped: {reason.label}", self.dropped_claims.get(reason, 0))
            for reason in IdReason
            if reason != IdReason.VALID
        ]

    def table(self) -> pa.Table:
        rows: list[tuple[str, str | None, str | None]] = [(step, self.masked(n), None) for step, n in self.steps]
        rows += [(step, None, self.masked(count)) for step, count in self.dropped_rows()]
        return pa.table(
            {
                "step": pa.array([r[0] for r in rows], pa.string()),
                "persons": pa.array([r[1] for r in rows], pa.string()),
                "bills": pa.array([r[2] for r in rows], pa.string()),
            }
        )
