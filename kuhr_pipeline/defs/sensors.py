"""Sensor `new_applications`: each new or changed approved spec adds its partition and one run."""

import dagster as dg

from kuhr_pipeline.defs.jobs import deliver_application
from kuhr_pipeline.defs.partitions import applications_partitions
from kuhr_pipeline.defs.resources import KuhrPaths
from kuhr_pipeline.defs.runs import run_request_for
from kuhr_pipeline.errors import KuhrError
from kuhr_pipeline.spec import load_spec, spec_files


@dg.sensor(
    job=deliver_application,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Watches KUHR_APPLICATIONS; run key = application id + spec hash, so a spec is delivered once.",
)
def new_applications(context: dg.SensorEvaluationContext, paths: KuhrPaths) -> dg.SensorResult:
    requests: list[dg.RunRequest] = []
    new_partitions: list[str] = []
    for path in spec_files(paths.applications_dir()):
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
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[applications_partitions.build_add_request(new_partitions)]
        if new_partitions
        else [],
    )
