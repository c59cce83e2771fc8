"""What a run of one application needs around its steps: requests and tags (shared by the CLI, the
sensor and the schedule), the guards every run passes first (`begin_run`), its staging, its spec."""

from pathlib import Path

import dagster as dg

from kuhr_pipeline.application import LoadedSpec
from kuhr_pipeline.application.find import require_application_id
from kuhr_pipeline.defs.partitions import SOURCE_SCAN_POOL, applications_partitions
from kuhr_pipeline.defs.resources import KuhrPaths, PseudonymKey
from kuhr_pipeline.defs.stale_runs import IN_PROGRESS, PROCESS_TAG, release_dead_runs, wait_for_pool
from kuhr_pipeline.errors import RunConflict
from kuhr_pipeline.processes import this_process
from kuhr_pipeline.staging import Staging


def run_tags(loaded: LoadedSpec) -> dict[str, str]:
    return {"kuhr/application_id": loaded.application_id, "kuhr/spec_sha256": loaded.sha256[:16]}


def run_config_for(spec_path: Path) -> dict[str, object]:
    """Run config holds the spec's path only: never a secret (run config is stored in run history)."""
    return {"ops": {"application": {"config": {"spec_path": str(spec_path.resolve())}}}}


def run_request_for(loaded: LoadedSpec, run_key: str) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=run_key,
        partition_key=loaded.application_id,
        run_config=run_config_for(loaded.path),
        tags=run_tags(loaded),
    )


def ensure_partition(instance: dg.DagsterInstance, application_id: str) -> None:
    if not instance.has_dynamic_partition(applications_partitions.name or "applications", application_id):
        instance.add_dynamic_partitions(applications_partitions.name or "applications", [application_id])


def run_staging(run_id: str, application_id: str, paths: KuhrPaths, pseudonym_key: PseudonymKey) -> Staging:
    """This run's staging folder and data key (the same in every process of the run)."""
    return Staging.for_run(paths.staging_dir(application_id, run_id), pseudonym_key.master_key(), run_id)


def begin_run(context: dg.AssetExecutionContext) -> str:
    """What every run does first, before reading any file: check its partition key, record its
    process, stop if another run of its application is in progress, and wait (sleeping, saying
    for whom) until the source_scan pool has a slot. Returns the application id."""
    application_id = require_application_id(context.partition_key, "partition key")
    tag_run_process(context)
    refuse_overlapping_runs(context, application_id)
    wait_for_pool(context.instance, SOURCE_SCAN_POOL, application_id, context.log.info)
    return application_id


def tag_run_process(context: dg.AssetExecutionContext) -> None:
    """Record the process that runs this in-process run (runs launched from the UI, a sensor or a
    schedule; `deliver` tags its runs itself), so a run whose process is killed can be told dead."""
    if PROCESS_TAG not in context.run.tags and context.job_def.executor_def.name == "in_process":
        context.instance.add_run_tags(context.run_id, {PROCESS_TAG: this_process()})


def refuse_overlapping_runs(context: dg.AssetExecutionContext, application_id: str) -> None:
    """No two runs of one application at once, however they were launched: `deliver` holds a lock
    and queued runs a tag limit, but a CLI run and a UI run pass neither. Two runs starting
    together each see the other and both stop: never do they mix their staging or outputs."""
    release_dead_runs(context.instance, context.log.info)
    others = [
        run.run_id
        for run in context.instance.get_runs(
            filters=dg.RunsFilter(statuses=IN_PROGRESS, tags={"dagster/partition": application_id})
        )
        if run.run_id != context.run_id
    ]
    if others:
        raise RunConflict.single(
            application_id,
            "run",
            f"run {others[0][:8]} of this application is in progress; this run stopped before reading anything",
            "launch it again when that run has ended",
        )


def require_run_spec(context: dg.AssetExecutionContext | dg.OpExecutionContext, loaded: LoadedSpec) -> None:
    """A run works on the spec it was launched with: when the run carries a spec hash (runs made
    by `deliver`, the sensor and the schedule), the spec this step holds must have it. A run
    launched without one (a UI "Materialize", `dagster asset materialize`) is tagged now, so every
    delivery run can be found by its application and spec."""
    launched = context.run.tags.get("kuhr/spec_sha256")
    if launched is None:
        context.instance.add_run_tags(context.run_id, run_tags(loaded))
    elif launched != loaded.sha256[: len(launched)]:
        raise RunConflict.single(
            str(loaded.path),
            "(spec)",
            f"sha256 {loaded.sha256[:16]} is not the spec this run was launched with ({launched}); it changed "
            "meanwhile or another run's spec was read. Nothing is delivered",
            "launch the run again",
        )
