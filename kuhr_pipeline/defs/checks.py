"""Blocking asset checks: an empty cohort and an extract that fails validation stop the delivery,
ending the run with the check's one sentence (see defs/failures.py)."""

import warnings
from collections.abc import Iterator
from typing import Any

import dagster as dg

from kuhr_pipeline.application import LoadedSpec
from kuhr_pipeline.cohort import CohortClaims
from kuhr_pipeline.cohort.attrition import ATTRITION_COLUMNS
from kuhr_pipeline.defs.assets import extract, statistics
from kuhr_pipeline.defs.cohort_steps import cohort
from kuhr_pipeline.defs.failures import verdict
from kuhr_pipeline.defs.partitions import applications_partitions
from kuhr_pipeline.defs.runs import run_staging
from kuhr_pipeline.defs.tables import arrow_table
from kuhr_pipeline.disclosure.statistics import StatisticsTable, keep_disclosure_report
from kuhr_pipeline.extract.build import ExtractFiles
from kuhr_pipeline.quality.gate import record_report
from kuhr_pipeline.quality.source_quality import SOURCE_QUALITY_FILE, check_source_quality, load_source_quality
from kuhr_pipeline.quality.statistics_rules import validate_statistics
from kuhr_pipeline.quality.suites import claims_suite, map_expectations
from kuhr_pipeline.quality.validate import ValidationReport, validate_tables
from kuhr_pipeline.source import open_source
from kuhr_pipeline.staging import Staging

# Partitioned checks are a Dagster 1.13 preview, and the only way a check gets exactly its own
# partition's inputs (an unpartitioned check loads every partition). Known and chosen: keep quiet.
warnings.filterwarnings("ignore", message="Specifying a partitions_def on an AssetCheckSpec", category=Warning)


def _staging_of(context: dg.AssetCheckExecutionContext, application_id: str) -> Staging:
    resources = context.resources
    return run_staging(context, application_id, resources.paths, resources.pseudonym_key)


@dg.asset_check(  # type: ignore[arg-type]  # a generator check: see defs/failures.verdict
    asset=cohort,
    blocking=True,
    partitions_def=applications_partitions,
    additional_ins={"application": dg.AssetIn("application")},
    description="No delivery of an empty cohort: an empty result is reported, not published.",
)
def cohort_is_not_empty(cohort: CohortClaims, application: LoadedSpec) -> Iterator[dg.AssetCheckResult]:
    result = dg.AssetCheckResult(
        passed=cohort.persons > 0,
        severity=dg.AssetCheckSeverity.ERROR,
        description=None if cohort.persons else "the cohort is empty (no person meets the criteria); see the attrition",
        metadata={
            "persons": cohort.attrition.masked(cohort.persons),
            "attrition": arrow_table(cohort.attrition.table(), ATTRITION_COLUMNS),
        },
    )
    yield from verdict(result, "cohort_is_not_empty", application.application_id)


@dg.asset_check(  # type: ignore[arg-type]  # a generator check: see defs/failures.verdict
    asset=extract,
    blocking=True,
    partitions_def=applications_partitions,
    additional_ins={"application": dg.AssetIn("application")},
    required_resource_keys={"paths", "pseudonym_key"},
    description="Great Expectations suite for the delivered claims, with the fødselsnummer leak guard.",
)
def extract_passes_validation(
    context: dg.AssetCheckExecutionContext, extract: ExtractFiles, application: LoadedSpec
) -> Iterator[dg.AssetCheckResult]:
    spec = application.spec
    files = [path for _, path in extract.tables()]
    staging = _staging_of(context, application.application_id)
    report = validate_tables("claims", files, claims_suite(spec, spec.plan.pairs), staging)
    record_report(staging, report, files)
    yield from verdict(_result(context, report), "extract_passes_validation", application.application_id)


def _result(
    context: dg.AssetCheckExecutionContext, report: ValidationReport, extra: dict[str, Any] | None = None
) -> dg.AssetCheckResult:
    """The check's verdict, with a Markdown table of results (never sample values)."""
    context.log.info(f"{report.suite}: {len(report.outcomes) - len(report.failed)} of {len(report.outcomes)} passed")
    return dg.AssetCheckResult(
        passed=report.success,
        severity=dg.AssetCheckSeverity.ERROR,
        description=None
        if report.success
        else "failed: " + "; ".join(f"{o.type} on {o.column} ({o.unexpected_count} unexpected)" for o in report.failed),
        # Counts as text: the UI plots a check's numbers across its runs, every application's as one series.
        metadata={
            "results": dg.MetadataValue.md(report.markdown()),
            "failed": f"{len(report.failed)} of {len(report.outcomes)}",
            **(extra or {}),
        },
    )


@dg.asset_check(  # type: ignore[arg-type]  # a generator check: see defs/failures.verdict
    asset=statistics,
    blocking=True,
    partitions_def=applications_partitions,
    additional_ins={"application": dg.AssetIn("application")},
    required_resource_keys={"paths", "pseudonym_key"},
    description="Statistics suite: measures, primary suppression, and the proof that no suppressed value is fixed "
    "by the whole table, nor for the single person of a suppressed cell (hypercubes checked; small tables also "
    "by linear programming).",
)
def statistics_passes_validation(
    context: dg.AssetCheckExecutionContext, statistics: StatisticsTable, application: LoadedSpec
) -> Iterator[dg.AssetCheckResult]:
    staging = _staging_of(context, application.application_id)
    report, proof = validate_statistics(
        statistics, staging, map_expectations(application.spec, application.spec.plan.pairs)
    )
    record_report(staging, report, [statistics.path])
    figures = keep_disclosure_report(statistics, proof, staging)
    context.log.info(
        f"statistics proof: {proof.suppressed:,} of {proof.cells:,} cells suppressed, "
        f"{'holds' if proof.holds else 'FAILS'} ({proof.seconds:.1f} s)"
    )
    result = _result(context, report, {"disclosure_report": dg.MetadataValue.json(figures)})
    yield from verdict(result, "statistics_passes_validation", application.application_id)


@dg.asset_check(
    asset=cohort,
    blocking=False,
    partitions_def=applications_partitions,
    additional_ins={"application": dg.AssetIn("application")},
    required_resource_keys={"paths"},
    description="Data quality of the source on a sample of each year: reported as a warning, never blocking. "
    "The sample is checked while the cohort step scans the source.",
)
def source_data_quality(context: dg.AssetCheckExecutionContext, application: LoadedSpec) -> dg.AssetCheckResult:
    staging = context.resources.paths.staging_dir(application.application_id, context.run.run_id)
    kept = load_source_quality(staging / SOURCE_QUALITY_FILE, context.run.run_id)
    report, rows = kept or check_source_quality(open_source(context.resources.paths.source_dir()), application.spec)
    context.log.info(
        f"source quality: {len(report.failed)} of {len(report.outcomes)} expectations failed "
        f"on a sample of {rows:,} claims"
    )
    return dg.AssetCheckResult(
        passed=report.success,
        severity=dg.AssetCheckSeverity.WARN,
        description=None
        if report.success
        else "source data quality: "
        + "; ".join(f"{o.type} on {o.column} ({o.unexpected_count} of {o.element_count})" for o in report.failed),
        metadata={"results": dg.MetadataValue.md(report.markdown()), "sample_claims": f"{rows:,}"},  # text: see _result
    )
