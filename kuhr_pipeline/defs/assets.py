"""The asset graph: application → cohort → extract → delivery (and statistics). Wiring only."""

from pathlib import Path

import dagster as dg

from kuhr_pipeline.application import LoadedSpec, load_spec
from kuhr_pipeline.application.find import find_spec
from kuhr_pipeline.cohort import CohortClaims
from kuhr_pipeline.defs.failures import plain_failures
from kuhr_pipeline.defs.partitions import applications_partitions
from kuhr_pipeline.defs.resources import KuhrPaths, PseudonymKey, SigningKey
from kuhr_pipeline.defs.runs import begin_run, require_run_spec, run_staging
from kuhr_pipeline.defs.tables import (
    column_schema,
    described,
    row_count,
    statistics_descriptions,
    text_table,
)
from kuhr_pipeline.delivery.package import assemble_and_publish
from kuhr_pipeline.delivery.publish import PublishedDelivery
from kuhr_pipeline.disclosure import kanon
from kuhr_pipeline.disclosure.kanon import KANON_COLUMNS
from kuhr_pipeline.disclosure.patterns import previous_pattern
from kuhr_pipeline.disclosure.statistics import StatisticsTable, build_statistics
from kuhr_pipeline.disclosure.suppression import Key
from kuhr_pipeline.errors import SpecRefused
from kuhr_pipeline.extract.build import ExtractFiles, build_extract_with_report
from kuhr_pipeline.report import preview
from kuhr_pipeline.staging import remove_staging


class ApplicationConfig(dg.Config):
    """Optional path of the spec file; default `$KUHR_APPLICATIONS/<application_id>.yaml`."""

    spec_path: str = ""


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
            **row_count(files.rows, cohort.attrition.threshold),
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
