"""What a run of one application needs around its steps: requests and tags (shared by the CLI, the
sensor and the schedule), the guards every run passes first (`begin_run`), its staging, its spec."""

from pathlib import Path

import dagster as dg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kuhr_pipeline.application import LoadedSpec
from kuhr_pipeline.application.find import require_application_id
from kuhr_pipeline.defs.partitions import SOURCE_SCAN_POOL, applications_partitions
from kuhr_pipeline.defs.resources import KuhrPaths, PseudonymKey
from kuhr_pipeline.defs.stale_runs import IN_PROGRESS, PROCESS_TAG, release_dead_runs, wait_for_pool
from kuhr_pipeline.delivery.audit import ran_by
from kuhr_pipeline.delivery.history import AGAIN_TAG, AlreadyDelivered, refuse_repeat
from kuhr_pipeline.delivery.manifest import public_fingerprint
from kuhr_pipeline.deployment import DEPLOYMENT_TAG, SIGNER_TAG, deployment_fingerprint
from kuhr_pipeline.errors import DeploymentMismatch, RunConflict
from kuhr_pipeline.processes import this_process
from kuhr_pipeline.staging import Staging

TRIGGER_TAG = "kuhr/trigger"  # set by `deliver` (cli); the others are read from Dagster's own tags
TRIGGERS = ("cli", "sensor", "schedule", "ui", "backfill")


def run_tags(loaded: LoadedSpec) -> dict[str, str]:
    return {"kuhr/application_id": loaded.application_id, "kuhr/spec_sha256": loaded.sha256[:16]}


def run_config_for(spec_path: Path) -> dict[str, object]:
    """Run config holds the spec's path only: never a secret (run config is stored in run history)."""
    return {"ops": {"application": {"config": {"spec_path": str(spec_path.resolve())}}}}


def run_request_for(loaded: LoadedSpec, run_key: str, again: bool = False) -> dg.RunRequest:
    """`again`: the repeat of an unchanged spec is meant (a recurring delivery that is due)."""
    return dg.RunRequest(
        run_key=run_key,
        partition_key=loaded.application_id,
        run_config=run_config_for(loaded.path),
        tags={**run_tags(loaded), **({AGAIN_TAG: "true"} if again else {})},
    )


def has_package(deliveries_root: Path, loaded: LoadedSpec) -> bool:
    """The spec has a prepared or released package in the audit log (the one gate would refuse it)."""
    try:
        refuse_repeat(deliveries_root, loaded.application_id, loaded.sha256, str(loaded.path))
    except AlreadyDelivered:
        return True
    return False


def trigger_of(run: dg.DagsterRun) -> str:
    """How the run was started: cli (`deliver`), sensor, schedule, backfill, else ui (a
    Materialize, `dg launch`, the GraphQL API)."""
    tags = run.tags
    if tags.get("dagster/sensor_name"):
        return "sensor"
    if tags.get("dagster/schedule_name"):
        return "schedule"
    if tags.get("dagster/backfill"):
        return "backfill"
    return "cli" if tags.get(TRIGGER_TAG) == "cli" else "ui"


def require_deployment_config(context: dg.AssetExecutionContext) -> None:
    """A run's folders, keys and signer are the deployment's: run config that names any resource
    (`resources.paths.config` pointing elsewhere, another key file) is refused before a file is read."""
    resources = (context.run.run_config or {}).get("resources") or {}
    named = sorted(resources) if isinstance(resources, dict) else ["(any)"]
    if named:
        raise DeploymentMismatch.single(
            f"run {context.run_id[:8]}",
            f"run config resources.{named[0]}",
            "names folders or keys at launch; a run uses the deployment's own (environment), so nothing was read",
            "launch the run without resources in its config",
        )


def require_deployment(run: dg.DagsterRun, paths: KuhrPaths, master_key: bytes) -> None:
    """This process belongs to the deployment that launched the run (its folders and master key):
    the first step tags the run, every later step (on any worker) compares."""
    here = deployment_fingerprint(paths.source_dir(), paths.deliveries_dir(), paths.applications_dir(), master_key)
    launched = run.tags.get(DEPLOYMENT_TAG)
    if launched is not None and launched != here:
        raise DeploymentMismatch.single(
            f"run {run.run_id[:8]}",
            DEPLOYMENT_TAG,
            "was launched by another deployment (other folders or another master key) than this worker's; "
            "the step refused to run",
            "run the deployment's own workers on its own queue",
        )


def ensure_partition(instance: dg.DagsterInstance, application_id: str) -> None:
    if not instance.has_dynamic_partition(applications_partitions.name or "applications", application_id):
        instance.add_dynamic_partitions(applications_partitions.name or "applications", [application_id])


RAN_BY_TAG = "kuhr/ran_by"


def claim_for_deployment(
    context: dg.AssetExecutionContext, paths: KuhrPaths, master_key: bytes, signing_key: Ed25519PrivateKey
) -> None:
    """The first step: the run carries the fingerprints of this deployment (folders, master key)
    and of its signer, and who prepares it; a run launched elsewhere with other ones stops here."""
    require_deployment(context.run, paths, master_key)
    signer = public_fingerprint(signing_key.public_key())
    if context.run.tags.get(SIGNER_TAG, signer) != signer:
        raise DeploymentMismatch.single(
            f"run {context.run_id[:8]}",
            SIGNER_TAG,
            "names another signing key than this deployment's",
            "launch it here",
        )
    tags = {
        DEPLOYMENT_TAG: deployment_fingerprint(
            paths.source_dir(), paths.deliveries_dir(), paths.applications_dir(), master_key
        ),
        SIGNER_TAG: signer,
    }
    if trigger_of(context.run) != "cli":  # `deliver` names its user itself; elsewhere the launching process does
        tags[RAN_BY_TAG] = ran_by()
    context.instance.add_run_tags(context.run_id, tags)


def require_signer(run: dg.DagsterRun, signing_key: Ed25519PrivateKey) -> None:
    """The step that signs belongs to the deployment whose signer the run carries."""
    if run.tags.get(SIGNER_TAG) != public_fingerprint(signing_key.public_key()):
        raise DeploymentMismatch.single(
            f"run {run.run_id[:8]}",
            SIGNER_TAG,
            "was prepared for another signing key than this worker's; the package was not signed",
            "run the deployment's own workers on its own queue",
        )


StepContext = dg.AssetExecutionContext | dg.OpExecutionContext | dg.AssetCheckExecutionContext


def stored_run(context: StepContext) -> dg.DagsterRun:
    """The run as the instance holds it now, with the tags its first step added (`context.run`
    is the run as it was launched)."""
    return context.instance.get_run_by_id(context.run.run_id) or context.run


def run_staging(context: StepContext, application_id: str, paths: KuhrPaths, pseudonym_key: PseudonymKey) -> Staging:
    """This run's staging folder and data key (the same in every process of the run), once this
    process is found to belong to the run's deployment."""
    master_key = pseudonym_key.master_key()
    require_deployment(stored_run(context), paths, master_key)
    run_id = context.run.run_id
    return Staging.for_run(paths.staging_dir(application_id, run_id), master_key, run_id)


def begin_run(context: dg.AssetExecutionContext) -> str:
    """What every run does first, before reading any file: check its partition key and that its
    config names no folders or keys, record its process, stop if another run of its application
    is in progress, and wait (sleeping, saying for whom) until the source_scan pool has a slot.
    Returns the application id."""
    application_id = require_application_id(context.partition_key, "partition key")
    require_deployment_config(context)
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
