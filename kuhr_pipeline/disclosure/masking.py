"""The one rule for counts shown outside the encrypted delivery: below the threshold, only "<threshold".

Metadata, check metadata, charts, run logs and command-line output are stored or seen by people
who are not the recipients (the event log keeps them for good). A count of 1–4 persons, or of
the claims of so few, can single someone out; 0 cannot, and is shown.
"""

from __future__ import annotations

from kuhr_pipeline.spec.model import ApplicationSpec

SMALL_COUNT_THRESHOLD = 5


def small_count_threshold(spec: ApplicationSpec) -> int:
    """5, or the statistics' min_cell when that is higher."""
    return max(SMALL_COUNT_THRESHOLD, spec.statistics.min_cell) if spec.statistics else SMALL_COUNT_THRESHOLD


def mask_count(count: int, threshold: int = SMALL_COUNT_THRESHOLD) -> str:
    return f"<{threshold}" if 0 < count < threshold else str(count)
