"""Cohort selection: entry criteria, exclusions, attrition, and the cohort's claims with pseudonyms."""

from __future__ import annotations

from pathlib import Path

from kuhr_pipeline.cohort.attrition import Attrition
from kuhr_pipeline.cohort.select import CohortClaims, Progress, collect_claims, find_cohort
from kuhr_pipeline.extract.build import needs_practitioner_pseudonym, source_columns
from kuhr_pipeline.identity.pseudonym import Pseudonymiser, patient_domain, practitioner_domain
from kuhr_pipeline.source.scan import Source
from kuhr_pipeline.spec.model import ApplicationSpec

COHORT_CLAIMS_FILE = "cohort_claims.parquet"


def select_cohort(
    source: Source,
    spec: ApplicationSpec,
    master_key: bytes,
    out_dir: Path,
    on_progress: Progress | None = None,
) -> CohortClaims:
    """Both passes: find the cohort, then stage its claims (pseudonymised) in `out_dir`."""
    threshold = max(5, spec.statistics.min_cell) if spec.statistics else 5
    cohort, attrition = find_cohort(source, spec, threshold, on_progress)
    patients = Pseudonymiser(master_key, patient_domain(spec.domain))
    practitioners = (
        Pseudonymiser(master_key, practitioner_domain(spec.domain)) if needs_practitioner_pseudonym(spec) else None
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / COHORT_CLAIMS_FILE
    rows = collect_claims(source, spec, cohort, source_columns(spec), patients, practitioners, out, on_progress)
    return CohortClaims(out, rows, len(cohort), attrition)


__all__ = ["Attrition", "CohortClaims", "select_cohort"]
