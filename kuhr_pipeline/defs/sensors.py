"""Sensors: `new_applications` (each new or changed approved spec adds its partition and one run)
and `staging_cleanup_on_failure` / `staging_cleanup_on_cancel` (a run that ends without delivering
leaves no staging behind)."""

import re

import dagster as dg

from kuhr_pipeline import settings
from kuhr_pipeline.defs.jobs import deliver_application
from kuhr_pipeline.defs.partitions import applications_partitions
from kuhr_pipeline.defs.resources import KuhrPaths
from kuhr_pipeline.defs.runs import run_request_for
from kuhr_pipeline.defs.stale_runs import release_dead_runs
from kuhr_pipeline.errors import KuhrError
from kuhr_pipeline.spec import load_spec, spec_files
from kuhr_pipeline.spec.find import declared_id
from kuhr_pipeline.spec.model import APPLICATION_ID_PATTERN
from kuhr_pipeline.staging import remove_staging


@dg.sensor(
    job=deliver_application,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Watches KUHR_APPLICATIONS; run key = application id + spec hash, so a spec is delivered once.",
)
def new_applications(context: dg.SensorEvaluationContext, paths: KuhrPaths) -> dg.SensorResult:
    requests: list[dg.RunRequest] = []
    new_partitions: list[str] = []
    declared: set[str | None] = set()
    for path in spec_files(paths.applications_dir()):
        declared.add(declared_id(path))
        try:
            loaded = load_spec(path)
        except KuhrError as refused:
            context.log.warning(f"refused, skipped: {refused}")
            continue
        except Exception as error:  # one bad file never stops the others
            context.log.error(f"{path}: could not be read ({error.__class__.__name__}); skipped")
            continue
        application_id = loaded.application_id
        if any(r.partition_key == application_id for r in requests):
            context.log.warning(f"{path}: application_id {application_id} is used by another spec file; skipped")
            continue
        if not context.instance.has_dynamic_partition(applications_partitions.name or "applications", application_id):
            new_partitions.append(application_id)
        requests.append(run_request_for(loaded, run_key=f"{application_id}:{loaded.sha256[:16]}"))
    unwanted = _unwanted_partitions(context, declared)
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[
            *([applications_partitions.build_add_request(new_partitions)] if new_partitions else []),
            *([applications_partitions.build_delete_request(unwanted)] if unwanted else []),
        ],
    )


def _unwanted_partitions(context: dg.SensorEvaluationContext, declared: set[str | None]) -> list[str]:
    """Partitions that are no application id (added by hand through the API), and, when every
    spec file could be read, partitions that no spec file declares: reported, then removed."""
    unwanted = []
    for key in context.instance.get_dynamic_partitions(applications_partitions.name or "applications"):
        if not re.fullmatch(APPLICATION_ID_PATTERN, key):
            context.log.warning(f"partition {key!r} is not an application id: removed")
            unwanted.append(key)
        elif None not in declared and key not in declared:
            context.log.warning(f"partition {key} has no spec file in KUHR_APPLICATIONS: removed")
            unwanted.append(key)
    return unwanted


def _remove_staging_of(context: dg.RunStatusSensorContext) -> None:
    """The staging of the run's application, found by its partition key (an application_id)."""
    application_id = context.dagster_run.tags.get("dagster/partition", "")
    if re.fullmatch(APPLICATION_ID_PATTERN, application_id):
        remove_staging(settings.staging_dir(application_id, context.dagster_run.run_id))
        context.log.info(f"{application_id}: staging of run {context.dagster_run.run_id[:8]} removed")


@dg.run_failure_sensor(
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="A failed run's staging (person-level rows) is removed.",
)
def staging_cleanup_on_failure(context: dg.RunFailureSensorContext) -> None:
    _remove_staging_of(context)


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.CANCELED,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="A canceled run's staging (person-level rows) is removed.",
)
def staging_cleanup_on_cancel(context: dg.RunStatusSensorContext) -> None:
    _remove_staging_of(context)


@dg.sensor(
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Runs whose process is gone (killed, out of memory) are marked failed and their pool slots "
    "freed, so that they never block the runs after them.",
)
def release_dead_runs_sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    released = release_dead_runs(context.instance, context.log.info)
    return dg.SkipReason(f"released {len(released)} run(s)" if released else "every run in progress is alive")
