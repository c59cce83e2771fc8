"""The asset graph: application → cohort → extract or statistics → delivery. Wiring only: the
cohort's steps are in cohort_steps.py, the delivery's in delivery_steps.py."""

from collections.abc import Iterator
from pathlib import Path

import dagster as dg

from kuhr_pipeline.application import LoadedSpec, load_spec
from kuhr_pipeline.application.find import find_spec
from kuhr_pipeline.cohort import CohortClaims
from kuhr_pipeline.defs.failures import plain_failures
from kuhr_pipeline.defs.partitions import applications_partitions
from kuhr_pipeline.defs.resources import KuhrPaths, PseudonymKey, SigningKey
from kuhr_pipeline.defs.runs import begin_run, claim_for_deployment, require_run_spec, run_staging
from kuhr_pipeline.defs.tables import (
    column_schema,
    described,
    row_count,
    statistics_descriptions,
    text_table,
)
from kuhr_pipeline.delivery.history import AGAIN_TAG, prepared_before, refuse_repeat
from kuhr_pipeline.disclosure import kanon
from kuhr_pipeline.disclosure.kanon import KANON_COLUMNS
from kuhr_pipeline.disclosure.patterns import previous_pattern
from kuhr_pipeline.disclosure.statistics import StatisticsTable, build_statistics
from kuhr_pipeline.errors import SpecRefused
from kuhr_pipeline.extract.build import ExtractFiles, build_extract_with_report
from kuhr_pipeline.identity.population import load_population


class ApplicationConfig(dg.Config):
    """Optional path of the spec file; default `$KUHR_APPLICATIONS/<application_id>.yaml`."""

    spec_path: str = ""


@dg.asset(partitions_def=applications_partitions, group_name="delivery", kinds={"yaml"})
@plain_failures
def application(
    context: dg.AssetExecutionContext,
    config: ApplicationConfig,
    paths: KuhrPaths,
    pseudonym_key: PseudonymKey,
    signing_key: SigningKey,
) -> LoadedSpec:
    """The approved application spec, checked against the contract and the catalogue, and passed
    through the one gate: an unchanged spec already prepared or released is refused unless the
    run is tagged kuhr/again=true."""
    application_id = begin_run(context)
    claim_for_deployment(context, paths, pseudonym_key.master_key(), signing_key.private_key())
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
    load_population(loaded)  # a population that cannot be read stops the run here, before a scan
    if context.run.tags.get(AGAIN_TAG) != "true":
        refuse_repeat(paths.deliveries_dir(), application_id, loaded.sha256, str(path))
    context.log.info(f"application: {application_id} checked ({loaded.spec.data_level}, spec {loaded.sha256[:12]})")
    if not prepared_before(paths.deliveries_dir(), application_id, loaded.sha256):  # once per spec version
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
            "pseudonyms": spec.pseudonym_form,
            "advisories": dg.MetadataValue.md("\n".join(f"- {a}" for a in loaded.advisories) or "none"),
        }
    )
    return loaded


@dg.asset(partitions_def=applications_partitions, group_name="delivery", kinds={"parquet"}, output_required=False)
@plain_failures
def extract(
    context: dg.AssetExecutionContext,
    application: LoadedSpec,
    cohort: CohortClaims,
    paths: KuhrPaths,
    pseudonym_key: PseudonymKey,
) -> Iterator[dg.Output[ExtractFiles]]:
    """Exactly the approved variables, generalised as approved, in the spec's order. Made for a
    person-level application only: for a statistics one it is not materialised (nor checked)."""
    spec = application.spec
    if spec.data_level != "pseudonymised":
        context.log.info("extract: not made (data_level statistics: the delivery is the statistics table)")
        return
    staging = run_staging(context, application.application_id, paths, pseudonym_key)
    claims = cohort.attrition.masked(cohort.rows)
    context.log.info(f"extract: selecting {len(spec.plan.columns)} variables of {claims} claims")
    descriptions = described(spec.plan.pairs)
    files, report = build_extract_with_report(spec, cohort.path, staging)
    yield dg.Output(
        files,
        metadata={
            **row_count(files.rows, cohort.attrition.masked(files.rows)),
            "files": ", ".join(sorted(files.files)),
            "dagster/column_schema": column_schema(files.schema, descriptions),
            "disclosure_report": text_table(
                ["figure", "value"], kanon.shown(report, cohort.attrition.threshold), KANON_COLUMNS
            ),
        },
    )


@dg.asset(partitions_def=applications_partitions, group_name="delivery", kinds={"parquet"}, output_required=False)
@plain_failures
def statistics(
    context: dg.AssetExecutionContext,
    application: LoadedSpec,
    cohort: CohortClaims,
    pseudonym_key: PseudonymKey,
    paths: KuhrPaths,
) -> Iterator[dg.Output[StatisticsTable]]:
    """For data_level statistics: every cell and margin, with primary and secondary suppression
    (cells the application's last release hid stay hidden). Not materialised (nor checked) for a
    person-level application."""
    spec = application.spec
    if spec.statistics is None:
        context.log.info("statistics: not made (data_level pseudonymised: the delivery is the extract)")
        return
    staging = run_staging(context, application.application_id, paths, pseudonym_key)
    dimensions = spec.plan.names
    previous = previous_pattern(paths.deliveries_dir(), application.application_id, dimensions)
    context.log.info(
        f"statistics: the cube over {len(spec.statistics.group_by)} dimensions of "
        f"{cohort.attrition.masked(cohort.rows)} claims; {len(previous)} cells hidden in the last release"
    )
    result = build_statistics(spec, cohort.path, staging, staging.sub("statistics"), previous)
    yield dg.Output(
        result,
        metadata={
            "dagster/row_count": result.rows,
            "suppressed_primary": result.primary,
            "suppressed_secondary": result.secondary,
            "secondary_method": result.method,
            "dagster/column_schema": column_schema(staging.parquet_schema(result.path), statistics_descriptions(spec)),
        },
    )
