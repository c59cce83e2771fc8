"""Cohort selection: entry criteria, exclusions, attrition, and the cohort's claims with pseudonyms."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from kuhr_pipeline.application.model import ApplicationSpec
from kuhr_pipeline.cohort.attrition import Attrition
from kuhr_pipeline.cohort.select import CohortClaims, CohortProfile, collect_claims, find_cohort
from kuhr_pipeline.cohort.windows import Progress, reach
from kuhr_pipeline.extract.generalise import age_label, month_label
from kuhr_pipeline.identity.pseudonym import Pseudonymiser, patient_domain, practitioner_domain
from kuhr_pipeline.source.scan import Source
from kuhr_pipeline.staging import Staging

COHORT_CLAIMS_FILE = "cohort_claims.arrow"


def select_cohort(
    source: Source,
    spec: ApplicationSpec,
    master_key: bytes,
    staging: Staging,
    on_progress: Progress | None = None,
) -> CohortClaims:
    """Both passes: find the cohort, then stage its claims (pseudonymised, sealed) in `staging`."""
    source.require_sound_period(*reach(spec))
    out = staging.path(COHORT_CLAIMS_FILE)
    # pass 1 → pass 2 only: 4 bytes a claim, labels meaningless outside the run (mkstemp: owner-only)
    descriptor, name = tempfile.mkstemp(
        prefix=".row_labels-", suffix=".tmp", dir=staging.folder
    )  # pass 1 → pass 2 only
    os.close(descriptor)
    row_labels = Path(name)
    try:
        found = find_cohort(source, spec, row_labels, on_progress)
        patients = Pseudonymiser(master_key, patient_domain(spec.domain))
        practitioners = (
            Pseudonymiser(master_key, practitioner_domain(spec.domain)) if spec.plan.practitioner_pseudonyms else None
        )
        rows, months = collect_claims(
            source, spec, found, list(spec.plan.source_columns), patients, practitioners, staging, out, on_progress
        )
    finally:
        row_labels.unlink(missing_ok=True)
    profile = CohortProfile(
        persons_per_age_group={
            label: found.attrition.masked(n) for label, n in _age_groups(found.first_claim_ages).items()
        },
        claims_per_month={month_label(k): found.attrition.masked(n) for k, n in sorted(months.items())},
    )
    return CohortClaims(out, rows, len(found.labels), found.attrition, profile)


def _age_groups(ages: np.ndarray) -> dict[str, int]:
    """Persons per 10-year age group at their first entry claim (UNKNOWN where the age is missing)."""
    groups: dict[str, int] = {}
    for age in ages.tolist():
        label = age_label(age, 10)
        groups[label] = groups.get(label, 0) + 1
    return dict(sorted(groups.items()))


__all__ = ["Attrition", "CohortClaims", "select_cohort"]
