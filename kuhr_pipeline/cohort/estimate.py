"""A feasibility estimate for an applicant: how many persons a cohort would hold, before approval.

Pass 1 only — no pseudonyms, no claims, no extract, nothing staged: the row labels pass 1 writes
for pass 2 (run-local numbers, no ids) go to a temporary file that is removed at once. What is
shown is the masked attrition, as a delivery's metadata shows it."""

from __future__ import annotations

import tempfile
from pathlib import Path

from kuhr_pipeline.application.model import ApplicationSpec
from kuhr_pipeline.cohort.attrition import Attrition
from kuhr_pipeline.cohort.select import find_cohort
from kuhr_pipeline.cohort.windows import Progress, reach
from kuhr_pipeline.source.scan import Source


def estimate_cohort(source: Source, spec: ApplicationSpec, on_progress: Progress | None = None) -> Attrition:
    source.require_sound_period(*reach(spec))
    with tempfile.TemporaryDirectory(prefix="kuhr-estimate-") as folder:
        found = find_cohort(source, spec, Path(folder) / "row_labels", on_progress)
        found.row_labels.path.unlink(missing_ok=True)
    return found.attrition


def attrition_rows(attrition: Attrition) -> list[dict[str, str]]:
    """The attrition as shown: every count masked (and rounded for statistics specs)."""
    table = attrition.table()
    return [{k: v for k, v in row.items() if v is not None} for row in table.to_pylist()]
