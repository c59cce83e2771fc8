"""The delivery asset as steps: whichever of `extract` and `statistics` the application's data level
made (the other is not materialised: an optional output) is published. Wiring only: the work is in
`kuhr_pipeline.delivery`.

Dagster skips a step when an input's upstream output is missing, unless the input fans in from
several steps and not all of them are missing. So each table passes through a step of its own
(which waits for the table's blocking check, and is skipped with it) and `publish` fans in both.
"""

import logging

import dagster as dg

from kuhr_pipeline.application import LoadedSpec
from kuhr_pipeline.cohort import CohortClaims
from kuhr_pipeline.defs.failures import plain_failures
from kuhr_pipeline.defs.partitions import applications_partitions
from kuhr_pipeline.defs.resources import KuhrPaths, PseudonymKey, SigningKey
from kuhr_pipeline.defs.runs import RAN_BY_TAG, require_run_spec, require_signer, run_staging, stored_run, trigger_of
from kuhr_pipeline.delivery.audit import ran_by
from kuhr_pipeline.delivery.package import assemble_and_publish
from kuhr_pipeline.delivery.publish import Provenance, PublishedDelivery
from kuhr_pipeline.disclosure.statistics import StatisticsTable
from kuhr_pipeline.extract.build import ExtractFiles
from kuhr_pipeline.identity.pseudonym import pseudonym_provenance
from kuhr_pipeline.report import SMALL_COHORT_ADVICE
from kuhr_pipeline.staging import remove_staging


class _NotMadeIsNotUnchecked(logging.Filter):
    """Dagster warns that a blocking check "emitted no result" when the check's step was skipped
    because its table was not made; our checks always yield a result when they run (verdict)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "emitted no result" not in record.getMessage()


logging.getLogger("dagster._core.execution.plan.active").addFilter(_NotMadeIsNotUnchecked())


@dg.op
def validated_extract(extract: ExtractFiles) -> ExtractFiles:
    """The extract, once its blocking check passed."""
    return extract


@dg.op
def validated_statistics(statistics: StatisticsTable) -> StatisticsTable:
    """The statistics table, once its blocking check passed."""
    return statistics


@dg.op(ins={"made": dg.In(list)})
@plain_failures
def publish(
    context: dg.OpExecutionContext,
    application: LoadedSpec,
    cohort: CohortClaims,
    made: list[ExtractFiles | StatisticsTable],
    paths: KuhrPaths,
    signing_key: SigningKey,
    pseudonym_key: PseudonymKey,
) -> PublishedDelivery:
    """Encrypt and sign the one table set the data level made, and prepare it for release."""
    (tables,) = made
    require_run_spec(context, application)
    staging = run_staging(context, application.application_id, paths, pseudonym_key)
    key = signing_key.private_key()
    run = stored_run(context)
    require_signer(run, key)
    context.log.info(f"delivery: preparing under {paths.deliveries_dir()}")
    made_by = Provenance(context.run_id, trigger_of(run), run.tags.get(RAN_BY_TAG) or ran_by())
    published = assemble_and_publish(
        application,
        cohort,
        tables,
        paths.deliveries_dir(),
        staging,
        key,
        on_step=context.log.info,
        still_wanted=lambda: _still_wanted(context),
        provenance=made_by,
        pseudonyms=pseudonym_provenance(
            application.spec.pseudonym_form,
            application.spec.domain,
            pseudonym_key.master_key(),
            application.population_sha256,
        ),
    )
    remove_staging(staging.folder)  # a failed run's: sensors.staging_cleanup
    small = cohort.persons < cohort.attrition.threshold
    if small:
        context.log.warning(SMALL_COHORT_ADVICE.format(persons=cohort.attrition.masked(cohort.persons)))
    context.add_output_metadata(
        {
            **(
                {"advisory": SMALL_COHORT_ADVICE.format(persons=cohort.attrition.masked(cohort.persons))}
                if small
                else {}
            ),
            "delivery_folder": dg.MetadataValue.path(str(published.path)),
            "delivery_id": published.delivery_id,
            "state": "prepared: waiting for a reviewer's release",
            "manifest_sha256": published.manifest_sha256,
            "files": published.files,
        }
    )
    return published


def _still_wanted(context: dg.OpExecutionContext) -> bool:
    """The run was not stopped meanwhile (by `deliver` on SIGTERM, or the UI) while this step ran
    on a worker of its own."""
    run = context.instance.get_run_by_id(context.run_id)
    return run is not None and run.status not in (
        dg.DagsterRunStatus.CANCELING,
        dg.DagsterRunStatus.CANCELED,
        dg.DagsterRunStatus.FAILURE,
    )


@dg.graph_asset(partitions_def=applications_partitions, group_name="delivery", kinds={"crypt4gh"})
def delivery(
    application: LoadedSpec, cohort: CohortClaims, extract: ExtractFiles, statistics: StatisticsTable
) -> PublishedDelivery:
    """The encrypted, signed delivery package, prepared atomically under KUHR_DELIVERIES/<id>/.pending
    (a registered reviewer releases it: `kuhr-pipeline release`)."""
    return publish(application, cohort, [validated_extract(extract), validated_statistics(statistics)])
