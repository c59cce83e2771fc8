"""The one rule for counts shown outside the encrypted data: below the threshold, only "<threshold";
in statistics deliveries, rounded to a multiple of 5.

Metadata, check metadata, charts, run logs and command-line output are stored or seen by people
who are not the recipients (the event log keeps them for good). A count of 1–4 persons, or of
the claims of so few, can single someone out; 0 cannot, and is shown.
"""

from __future__ import annotations

from kuhr_pipeline.application.model import ApplicationSpec

SMALL_COUNT_THRESHOLD = 5


def small_count_threshold(spec: ApplicationSpec) -> int:
    """5, or the statistics' min_cell when that is higher."""
    return max(SMALL_COUNT_THRESHOLD, spec.statistics.min_cell) if spec.statistics else SMALL_COUNT_THRESHOLD


def count_rounding(spec: ApplicationSpec) -> int:
    """Statistics deliveries round every shown count to a multiple of 5, so that two counts (steps
    of 1000 and 998 persons) cannot be subtracted to reveal a small group; person-level ones: 1."""
    return 5 if spec.data_level == "statistics" else 1


def mask_count(count: int, threshold: int = SMALL_COUNT_THRESHOLD, rounding: int = 1) -> str:
    """The count as shown: "<threshold" when small, else rounded to the nearest multiple of
    `rounding` (halves up)."""
    if 0 < count < threshold:
        return f"<{threshold}"
    return str((count + rounding // 2) // rounding * rounding)
