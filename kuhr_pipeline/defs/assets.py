"""The asset graph: application → cohort → extract → delivery (and statistics). Wiring only."""

from pathlib import Path

import dagster as dg

from kuhr_pipeline.application import LoadedSpec, load_spec
from kuhr_pipeline.application.find import find_spec
from kuhr_pipeline.cohort import CohortClaims, select_cohort
from kuhr_pipeline.cohort.attrition import ATTRITION_COLUMNS
from kuhr_pipeline.cohort.windows import Progress
from kuhr_pipeline.defs.failures import plain_failures
from kuhr_pipeline.defs.partitions import SOURCE_SCAN_POOL, applications_partitions
from kuhr_pipeline.defs.resources import KuhrPaths, PseudonymKey, SigningKey
from kuhr_pipeline.defs.runs import begin_run, require_run_spec, run_staging
from kuhr_pipeline.defs.tables import (
    arrow_table,
    column_schema,
    counts_table,
    described,
    statistics_descriptions,
    text_table,
)
from kuhr_pipeline.delivery.package import assemble_and_publish
from kuhr_pipeline.delivery.publish import PublishedDelivery
from kuhr_pipeline.disclosure import kanon
from kuhr_pipeline.disclosure.kanon import KANON_COLUMNS
from kuhr_pipeline.disclosure.masking import mask_count
from kuhr_pipeline.disclosure.patterns import previous_pattern
from kuhr_pipeline.disclosure.statistics import StatisticsTable, build_statistics
from kuhr_pipeline.disclosure.suppression import Key
from kuhr_pipeline.errors import SpecRefused
from kuhr_pipeline.extract.build import ExtractFiles, build_extract_with_report
from kuhr_pipeline.quality import gx_process
from kuhr_pipeline.quality.source_quality import check_source_quality_meanwhile, keep_source_quality
from kuhr_pipeline.report import months_by_year, preview, progress_line
from kuhr_pipeline.source import open_source
from kuhr_pipeline.staging import remove_staging, remove_stale_staging

LOG_STEPS = 10  # progress lines per pass, whatever the size of the source


class ApplicationConfig(dg.Config):
    """Optional path of the spec file; default `$KUHR_APPLICATIONS/<application_id>.yaml`."""

    spec_path: str = ""


def _progress(context: dg.AssetExecutionContext, total: int) -> Progress:
    """Log each pass at every tenth of the claims in the period's years (one event each in the log)."""
    seen: dict[str, int] = {}
    step = max(1, -(-total // LOG_STEPS))

    def report(stage: str, rows: int) -> None:
        before = seen.get(stage, 0)
        seen[stage] = before + rows
        if before // step != seen[stage] // step:
            context.log.info(progress_line(stage, seen[stage], total))

    return report


def _row_count(rows: int, threshold: int) -> dict[str, object]:
    """Dagster's row count when it may be shown; masked, as text, when it is small."""
    shown = mask_count(rows, threshold)
    return {"dagster/row_count": rows} if shown == str(rows) else {"rows": shown}


@dg.asset(partitions_def=applications_partitions, group_name="delivery", kinds={"yaml"})
@plain_failures
def application(context: dg.AssetExecutionContext, config: ApplicationConfig, paths: KuhrPaths) -> LoadedSpec:
    """The approved application spec, checked against the contract and the catalogue."""
    application_id = begin_run(context)
    path = Path(config.spec_path) if config.spec_path else find_spec(paths.applications_dir(), application_id)
    loaded = load_spec(path)
    if loaded.application_id != application_id:
        raise SpecRefused.single(
            str(path),
            "application_id",
            f"is '{loaded.application_id}', but the run's partition is '{application_id}'",
            "launch the run for the partition of the spec's application_id",
        )
    require_run_spec(context, loaded)
    context.log.info(f"application: {application_id} checked ({loaded.spec.data_level}, spec {loaded.sha256[:12]})")
    for advisory in loaded.advisories:
        context.log.warning(advisory)
    spec = loaded.spec
    context.add_output_metadata(
        {
            "spec_sha256": loaded.sha256,
            "data_level": spec.data_level,
            "period": f"{spec.period.from_} – {spec.period.to}",
            "claims": spec.claims,
            "recipients": ", ".join(loaded.recipient_keys),
            "advisories": dg.MetadataValue.md("\n".join(f"- {a}" for a in loaded.advisories) or "none"),
        }
    )
    return loaded


# A scan that fails for a reason of the machine (a step process killed, a read error on a shared
# disk) is run again once; a KuhrError (the input must be fixed first) is not (plain_failures).
SCAN_RETRY = dg.RetryPolicy(max_retries=1, delay=5)


@dg.asset(
    partitions_def=applications_partitions,
    group_name="delivery",
    kinds={"parquet"},
    pool=SOURCE_SCAN_POOL,
    retry_policy=SCAN_RETRY,
)
@plain_failures
def cohort(
    context: dg.AssetExecutionContext, application: LoadedSpec, paths: KuhrPaths, pseudonym_key: PseudonymKey
) -> CohortClaims:
    """The cohort (two streaming passes over the source) and its claims, pseudonymised, in staging.

    Meanwhile GX checks a sample of the source for the source_data_quality check."""
    staging = run_staging(context.run_id, application.application_id, paths, pseudonym_key)  # a bad key fails here
    master_key = pseudonym_key.master_key()
    gx_process.start()  # Great Expectations loads in its own process while the source is scanned
    source = open_source(paths.source_dir())
    for stale in remove_stale_staging(staging.folder):  # runs of one application never overlap
        context.log.info(f"cohort: removed the staging a stopped run left ({stale})")
    quality = check_source_quality_meanwhile(source, application.spec)
    period = application.spec.period
    total = source.rows_in_years(period.from_.year, period.to.year)
    context.log.info(f"cohort: scanning {source.path}: {total:,} claims in {period.from_.year}–{period.to.year}")
    result = select_cohort(source, application.spec, master_key, staging, _progress(context, total))
    warning = keep_source_quality(quality, staging, context.run_id)
    if warning:
        context.log.warning(warning)
    persons, claims = result.attrition.masked(result.persons), result.attrition.masked(result.rows)
    context.log.info(f"cohort: {persons} persons, {claims} claims")
    context.add_output_metadata(
        {
            "persons": persons,
            "claims": claims,
            **_row_count(result.rows, result.attrition.threshold),
            "attrition": arrow_table(result.attrition.table(), ATTRITION_COLUMNS),
            "persons_per_age_group": counts_table(result.profile.persons_per_age_group, "age at first entry claim"),
            "claims_per_month": text_table(
                ["year", *(f"{m:02d}" for m in range(1, 13))], months_by_year(result.profile.claims_per_month)
            ),
        }
    )
    return result


@dg.asset(partitions_def=applications_partitions, group_name="delivery", kinds={"parquet"})
@plain_failures
def extract(
    context: dg.AssetExecutionContext,
    application: LoadedSpec,
    cohort: CohortClaims,
    paths: KuhrPaths,
    pseudonym_key: PseudonymKey,
) -> ExtractFiles:
    """Exactly the approved variables, generalised as approved, in the spec's order."""
    spec = application.spec
    staging = run_staging(context.run_id, application.application_id, paths, pseudonym_key)
    if spec.data_level != "pseudonymised":
        context.add_output_metadata({"note": "data_level is statistics: no person-level extract"})
        return ExtractFiles({}, staging.schema(cohort.path))
    claims = cohort.attrition.masked(cohort.rows)
    context.log.info(f"extract: selecting {len(spec.plan.columns)} variables of {claims} claims")
    descriptions = described(spec.plan.pairs)
    files, report = build_extract_with_report(spec, cohort.path, staging)
    first = next(iter(files.tables()), None)
    context.add_output_metadata(
        {
            **_row_count(files.rows, cohort.attrition.threshold),
            "files": ", ".join(sorted(files.files)),
            "dagster/column_schema": column_schema(files.schema, descriptions),
            "disclosure_report": text_table(
                ["figure", "value"], kanon.shown(report, cohort.attrition.threshold), KANON_COLUMNS
            ),
            "preview": text_table(*preview(first[1], 5, staging), descriptions) if first else "(empty)",
        }
    )
    return files


@dg.asset(partitions_def=applications_partitions, group_name="delivery", kinds={"parquet"})
@plain_failures
def statistics(
    context: dg.AssetExecutionContext,
    application: LoadedSpec,
    cohort: CohortClaims,
    pseudonym_key: PseudonymKey,
    paths: KuhrPaths,
) -> StatisticsTable:
    """For data_level statistics: every cell and margin, with primary and secondary suppression
    (cells the application's last release hid stay hidden)."""
    spec = application.spec
    staging = run_staging(context.run_id, application.application_id, paths, pseudonym_key)
    previous: set[Key] = set()
    if spec.statistics is not None:
        dimensions = spec.plan.names
        previous = previous_pattern(paths.deliveries_dir(), application.application_id, dimensions)
        context.log.info(
            f"statistics: the cube over {len(spec.statistics.group_by)} dimensions of "
            f"{cohort.attrition.masked(cohort.rows)} claims; {len(previous)} cells hidden in the last release"
        )
    result = build_statistics(spec, cohort.path, staging, staging.sub("statistics"), previous)
    if result.path is None:
        context.add_output_metadata({"note": "data_level is pseudonymised: no statistics table"})
        return result
    context.add_output_metadata(
        {
            "dagster/row_count": result.rows,
            "suppressed_primary": result.primary,
            "suppressed_secondary": result.secondary,
            "secondary_method": result.method,
            "preview": text_table(*preview(result.path, 12, staging), statistics_descriptions(spec)),
        }
    )
    return result


@dg.asset(partitions_def=applications_partitions, group_name="delivery", kinds={"crypt4gh"})
@plain_failures
def delivery(
    context: dg.AssetExecutionContext,
    application: LoadedSpec,
    cohort: CohortClaims,
    extract: ExtractFiles,
    statistics: StatisticsTable,
    paths: KuhrPaths,
    signing_key: SigningKey,
    pseudonym_key: PseudonymKey,
) -> PublishedDelivery:
    """The encrypted, signed delivery package, published atomically under KUHR_DELIVERIES."""
    require_run_spec(context, application)
    staging = run_staging(context.run_id, application.application_id, paths, pseudonym_key)
    context.log.info(f"delivery: publishing under {paths.deliveries_dir()}")
    published = assemble_and_publish(
        application,
        cohort,
        extract,
        statistics,
        paths.deliveries_dir(),
        staging,
        signing_key.private_key(),
        on_step=context.log.info,
        still_wanted=lambda: _still_wanted(context),
    )
    remove_staging(staging.folder)  # a failed run's: sensors.staging_cleanup
    context.add_output_metadata(
        {
            "delivery_folder": dg.MetadataValue.path(str(published.path)),
            "delivery_id": published.delivery_id,
            "manifest_sha256": published.manifest_sha256,
            "files": published.files,
        }
    )
    return published


def _still_wanted(context: dg.AssetExecutionContext) -> bool:
    """The run was not stopped meanwhile (by `deliver` on SIGTERM, or the UI) while this step ran
    on a worker of its own."""
    run = context.instance.get_run_by_id(context.run_id)
    return run is not None and run.status not in (
        dg.DagsterRunStatus.CANCELING,
        dg.DagsterRunStatus.CANCELED,
        dg.DagsterRunStatus.FAILURE,
    )
