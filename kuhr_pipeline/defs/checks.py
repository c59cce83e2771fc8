"""Blocking asset checks: an empty cohort and an extract that fails validation stop the delivery."""

import dagster as dg

from kuhr_pipeline import settings
from kuhr_pipeline.cohort import CohortClaims
from kuhr_pipeline.defs.assets import cohort, extract
from kuhr_pipeline.extract.build import ExtractFiles, resolved
from kuhr_pipeline.quality.gate import record_report
from kuhr_pipeline.quality.suites import claims_suite
from kuhr_pipeline.spec import LoadedSpec


@dg.asset_check(
    asset=cohort,
    blocking=True,
    additional_ins={"application": dg.AssetIn("application")},
    description="No delivery of an empty cohort: an empty result is reported, not published.",
)
def cohort_is_not_empty(cohort: CohortClaims, application: LoadedSpec) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=cohort.persons > 0,
        severity=dg.AssetCheckSeverity.ERROR,
        description=None
        if cohort.persons
        else f"{application.application_id}: the cohort is empty (no person meets the criteria); see the attrition.",
        metadata={"persons": cohort.persons, "attrition": dg.MetadataValue.md(cohort.attrition.markdown())},
    )


@dg.asset_check(
    asset=extract,
    blocking=True,
    additional_ins={"application": dg.AssetIn("application")},
    description="Great Expectations suite for the delivered claims, with the fødselsnummer leak guard.",
)
def extract_passes_validation(
    context: dg.AssetCheckExecutionContext, extract: ExtractFiles, application: LoadedSpec
) -> dg.AssetCheckResult:
    spec = application.spec
    if spec.data_level != "pseudonymised":
        return dg.AssetCheckResult(passed=True, description="statistics delivery: no person-level extract")
    from kuhr_pipeline.quality.validate import validate_tables  # imports GX: only when a check runs

    files = [path for _, path in extract.tables()]
    report = validate_tables("claims", files, claims_suite(spec, resolved(spec.requested_variables())))
    record_report(settings.staging_dir(application.application_id), report, files)
    context.log.info(
        f"validation: {len(report.outcomes) - len(report.failed)} of {len(report.outcomes)} expectations passed"
    )
    return dg.AssetCheckResult(
        passed=report.success,
        severity=dg.AssetCheckSeverity.ERROR,
        description=None
        if report.success
        else "failed: " + "; ".join(f"{o.type} on {o.column} ({o.unexpected_count} unexpected)" for o in report.failed),
        metadata={"results": dg.MetadataValue.md(report.markdown()), "failed": len(report.failed)},
    )
