"""Cohort selection: entry criteria, exclusions, attrition, and the cohort's claims with pseudonyms.

`select_cohort` runs both passes here, group after group; the Dagster job runs the same steps
(`first_pass`, `find_cohort_in`, `second_pass`, `gather_claims`) as steps of their own, each
group on whichever worker is free (defs/cohort_steps.py).
"""

from __future__ import annotations

import shutil

from kuhr_pipeline.application.model import ApplicationSpec
from kuhr_pipeline.cohort.attrition import Attrition
from kuhr_pipeline.cohort.groups import ScanGroup, scan_groups
from kuhr_pipeline.cohort.select import (
    PASSES,
    CohortClaims,
    CohortProfile,
    FoundCohort,
    GroupClaims,
    GroupFound,
    Members,
    find_cohort_in,
    first_pass,
    gather_claims,
    second_pass,
)
from kuhr_pipeline.cohort.windows import Progress, reach
from kuhr_pipeline.extract.generalise import month_label
from kuhr_pipeline.identity.population import ListedPseudonyms, Population
from kuhr_pipeline.identity.pseudonym import PatientPseudonyms, Pseudonymiser, patient_domain, practitioner_domain
from kuhr_pipeline.source.scan import Source
from kuhr_pipeline.staging import Staging

COHORT_CLAIMS_FILE = "cohort_claims.arrow"


def select_cohort(
    source: Source,
    spec: ApplicationSpec,
    master_key: bytes,
    staging: Staging,
    on_progress: Progress | None = None,
    per_year: bool = False,
    on_members: Members | None = None,
    population: Population | None = None,
) -> CohortClaims:
    """Both passes: find the cohort, then stage its claims (pseudonymised, sealed) in `staging`.
    `per_year`: each pass reads the period a year at a time (what the fanned-out job does).
    `population`: the spec's population file, read (identity/population.py)."""
    source.require_sound_period(*reach(spec), spec.period.from_)
    try:
        groups = [first_pass(source, spec, group, staging, on_progress) for group in scan_groups(spec, per_year)]
        found = find_cohort_in(spec, groups, staging, on_members, population)
        patients, practitioners = pseudonymisers(spec, master_key, population)
        parts = [second_pass(source, spec, found, g, patients, practitioners, staging, on_progress) for g in groups]
        return cohort_claims(found, parts, staging)
    finally:
        shutil.rmtree(staging.folder / PASSES, ignore_errors=True)


def find_cohort(
    source: Source,
    spec: ApplicationSpec,
    staging: Staging,
    on_progress: Progress | None = None,
    on_members: Members | None = None,
    population: Population | None = None,
) -> FoundCohort:
    """Pass 1 only (the estimate): the cohort and its attrition."""
    source.require_sound_period(*reach(spec), spec.period.from_)
    groups = [first_pass(source, spec, group, staging, on_progress) for group in scan_groups(spec, per_year=False)]
    return find_cohort_in(spec, groups, staging, on_members, population)


def pseudonymisers(
    spec: ApplicationSpec, master_key: bytes, population: Population | None = None
) -> tuple[PatientPseudonyms, Pseudonymiser | None]:
    """The patients' pseudonyms (keyed, or the project's løpenumre from the population file), and
    the practitioners' when the plan delivers their pseudonyms."""
    patients: PatientPseudonyms
    if spec.pseudonym_form == "lopenr":
        if population is None:
            raise ValueError(f"{spec.application_id}: løpenumre need the spec's population, read")
        patients = ListedPseudonyms(population)
    else:
        patients = Pseudonymiser(master_key, patient_domain(spec.domain))
    if not spec.plan.practitioner_pseudonyms:
        return patients, None
    return patients, Pseudonymiser(master_key, practitioner_domain(spec.domain))


def cohort_claims(found: FoundCohort, parts: list[GroupClaims], staging: Staging) -> CohortClaims:
    """The groups' claims gathered into the staged cohort claims, with the cohort's picture."""
    out = staging.path(COHORT_CLAIMS_FILE)
    rows, months = gather_claims(parts, staging, out)
    profile = CohortProfile(
        persons_per_age_group={label: found.attrition.masked(n) for label, n in found.persons_per_age_group.items()},
        claims_per_month={month_label(k): found.attrition.masked(n) for k, n in months.items()},
    )
    return CohortClaims(out, rows, found.persons, found.attrition, profile)


__all__ = [
    "Attrition",
    "CohortClaims",
    "FoundCohort",
    "GroupClaims",
    "GroupFound",
    "ScanGroup",
    "cohort_claims",
    "find_cohort",
    "find_cohort_in",
    "first_pass",
    "pseudonymisers",
    "scan_groups",
    "second_pass",
    "select_cohort",
]
