"""Running the job for one application from this process, recorded in the instance at DAGSTER_HOME
(used by `kuhr-pipeline deliver`, so CLI deliveries show in the UI's run history). Its steps run
in this process, or where `executor` says (defs/executors.py)."""

from __future__ import annotations

import os
import signal
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import dagster as dg

from kuhr_pipeline import settings
from kuhr_pipeline.application import LoadedSpec, load_spec
from kuhr_pipeline.cohort.windows import reach
from kuhr_pipeline.defs import build_definitions
from kuhr_pipeline.defs.executors import (
    reconstructable_job,
    require_workers,
    run_config_elsewhere,
    stop_step_processes,
)
from kuhr_pipeline.defs.failures import EXIT_CODE
from kuhr_pipeline.defs.jobs import JOB_OF_EXECUTOR
from kuhr_pipeline.defs.resources import KuhrPaths, default_resources
from kuhr_pipeline.defs.runs import RAN_BY_TAG, TRIGGER_TAG, ensure_partition, run_config_for, run_tags
from kuhr_pipeline.defs.stale_runs import PROCESS_TAG
from kuhr_pipeline.delivery.audit import ran_by
from kuhr_pipeline.delivery.commit import make_ready
from kuhr_pipeline.delivery.history import AGAIN_TAG, refuse_repeat
from kuhr_pipeline.delivery.manifest import public_fingerprint
from kuhr_pipeline.deployment import DEPLOYMENT_TAG, SIGNER_TAG, deployment_fingerprint
from kuhr_pipeline.errors import KuhrError, Problem
from kuhr_pipeline.identity.keys import read_master_key, read_signing_key
from kuhr_pipeline.locks import application_lock, instance_setup_lock
from kuhr_pipeline.processes import this_process
from kuhr_pipeline.source import open_source
from kuhr_pipeline.staging import remove_staging
from kuhr_pipeline.stopping import run_stoppably


class RunFailed(KuhrError):
    """The run failed or validation stopped it: no delivery (exit 1)."""

    exit_code = 1


def loggers_for(verbosity: str) -> dict[str, object]:
    """What a `deliver` shows while it runs: nothing (quiet), the pipeline's lines with bars on a
    terminal (normal), or Dagster's own lines too (verbose)."""
    if verbosity == "quiet":
        return {"pipeline_lines": {"config": {"log_level": "CRITICAL"}}}
    if verbosity == "verbose":
        return {"console": {"config": {"log_level": "INFO"}}}
    return {"pipeline_lines": {"config": {"log_level": "INFO", "bars": sys.stderr.isatty()}}}


@dataclass(frozen=True)
class Delivered:
    """What `deliver` reports: where the delivery is, how to identify it, and its counts as they
    may be shown (masked below the threshold)."""

    application_id: str
    delivery_id: str
    path: Path
    manifest_sha256: str
    spec_sha256: str
    persons: str
    claims: str
    state: str = "prepared"  # waiting in .pending for a reviewer's release
    run_id: str = ""  # the Dagster run that prepared it (its event log, in the UI)

    def as_json(self) -> dict[str, str]:
        return {**asdict(self), "path": str(self.path)}


def run_delivery(
    spec_path: Path,
    source: Path | None = None,
    deliveries: Path | None = None,
    echo: Callable[[str], None] = print,
    instance: dg.DagsterInstance | None = None,
    again: bool = False,
    verbosity: str = "normal",
    executor: str = "in_process",
) -> Delivered:
    """Check everything a user can get wrong before the run, then run; returns the delivery.
    An unchanged spec already delivered into `deliveries` is refused unless `again`.
    `verbosity` (quiet, normal, verbose) chooses the run's log lines (see loggers_for);
    `executor` where the steps run (in_process, multiprocess, celery)."""
    loaded = load_spec(spec_path)
    master_key = read_master_key(settings.pseudonym_key_file())
    signing_key = read_signing_key(settings.signing_key_file())
    preparer = ran_by()
    # The flags are this command's deployment: set, as absolute paths, where every step reads it
    # (here, in a step process, or compared by a worker: a relative path means another folder there).
    chosen = {
        "KUHR_SOURCE": source or settings.source_dir(),
        "KUHR_DELIVERIES": deliveries or settings.deliveries_dir(),
        "KUHR_APPLICATIONS": settings.applications_dir(),
    }
    for variable, value in chosen.items():
        os.environ[variable] = str(Path(value).resolve())
    paths = KuhrPaths()
    open_source(paths.source_dir()).require_sound_period(*reach(loaded.spec), loaded.spec.period.from_)
    deliveries_root = paths.deliveries_dir()
    for done in make_ready(deliveries_root, signing_key):  # the log and the folders agree before the run
        echo(done)
    if not again:  # after make_ready: a package a killed run had committed counts, completed
        refuse_repeat(deliveries_root, loaded.application_id, loaded.sha256, str(spec_path))
    require_workers(executor, spec_path)
    os.environ.setdefault("DAGSTER_HOME", str(settings.dagster_home().resolve()))
    defs = build_definitions(default_resources())
    deployment = {
        DEPLOYMENT_TAG: deployment_fingerprint(
            paths.source_dir(), deliveries_root, paths.applications_dir(), master_key
        ),
        SIGNER_TAG: public_fingerprint(signing_key.public_key()),
        TRIGGER_TAG: "cli",
        RAN_BY_TAG: preparer,
        **({AGAIN_TAG: "true"} if again else {}),
    }
    if instance is not None:
        return _run(instance, defs, loaded, spec_path, paths, echo, loggers_for(verbosity), executor, deployment)
    # The instance this process opens is entered (which makes it the current one for Dagster's
    # definitions state) and disposed of afterwards (its database connections closed).
    with instance_setup_lock():
        own_instance = dg.DagsterInstance.get()
    with own_instance:
        hold_connections(own_instance)
        return _run(own_instance, defs, loaded, spec_path, paths, echo, loggers_for(verbosity), executor, deployment)


def hold_connections(instance: dg.DagsterInstance) -> None:
    """Keep one database connection per storage open for the run.

    Why: by default PostgreSQL storage opens a new connection for every event it writes and
    every query it makes (over 400 in a delivery, several ms each); the webserver's pooled
    setting reuses them. No statement timeout: a run's writes must not be cut off. Up to 20
    extra connections while one is in use, as the webserver allows: Dagster nests them (an event
    write checks a table on a second one), and a pool too small would stall the run. SQLite
    storage ignores the setting.
    """
    instance.optimize_for_webserver(statement_timeout=0, pool_recycle=3600, max_overflow=20)


@dataclass(frozen=True)
class _Outcome:
    """What a finished run says: its failures, or the delivery's and the cohort's metadata."""

    run_id: str
    problems: list[str]
    delivery: dict[str, object] | None = None  # the delivery's metadata: folder, id, manifest hash
    persons: str = ""
    claims: str = ""
    exit_code: int = RunFailed.exit_code


def _outcome(result: dg.ExecuteInProcessResult | dg.JobExecutionResult) -> _Outcome:
    """A package was prepared (its step ran to the end) whatever else failed beside it (a
    warning check's own error): said as prepared, with the other failures as warnings."""
    problems = failure_messages(result)
    delivered = _materialized(result, "delivery")
    if delivered is None:
        return _Outcome(result.run_id, problems or ["failed; no delivery"], exit_code=failure_exit_code(result))
    cohort = _materialized(result, "cohort")
    assert cohort is not None  # the delivery's input
    return _Outcome(
        result.run_id,
        problems,
        {name: value.value for name, value in delivered.metadata.items()},
        str(cohort.metadata["persons"].value),
        str(cohort.metadata["claims"].value),
    )


def _materialized(
    result: dg.ExecuteInProcessResult | dg.JobExecutionResult, node: str
) -> dg.AssetMaterialization | None:
    try:
        found = result.asset_materializations_for_node(node)
    except Exception:  # a node that never ran: Dagster's result has no events for it
        return None
    return found[0] if found else None


def _run(
    instance: dg.DagsterInstance,
    defs: dg.Definitions,
    loaded: LoadedSpec,
    spec_path: Path,
    paths: KuhrPaths,
    echo: Callable[[str], None],
    loggers: dict[str, object],
    executor: str,
    deployment: dict[str, str],
) -> Delivered:
    home = os.environ["DAGSTER_HOME"]
    steps = "" if executor == "in_process" else f"; steps: {executor}"
    echo(f"preparing {loaded.application_id} from {paths.source_dir()} (Dagster instance {home}{steps})")
    run_id = str(uuid.uuid4())  # an in-process run's; a stop finds runs by the process tag
    staging = paths.staging_dir(loaded.application_id)  # the run's own, and any a killed run left
    run_config = {**run_config_for(spec_path), "loggers": loggers}
    tags = {**run_tags(loaded), **deployment, PROCESS_TAG: this_process()}

    def execute() -> _Outcome:  # its application step waits for the pool, sleeping
        if executor == "in_process":
            job = defs.resolve_job_def(JOB_OF_EXECUTOR[executor])
            result = job.execute_in_process(
                partition_key=loaded.application_id,
                instance=instance,
                run_config=run_config,
                tags=tags,
                run_id=run_id,
                raise_on_error=False,
            )
            return _outcome(result)
        with dg.execute_job(
            reconstructable_job(executor),
            instance,
            run_config={**run_config, **run_config_elsewhere(executor)},
            tags={**tags, "dagster/partition": loaded.application_id},
        ) as elsewhere:
            return _outcome(elsewhere)

    def stopped(signum: int) -> None:
        _stop(instance, tags[PROCESS_TAG], staging, f"stopped by {signal.Signals(signum).name}", spec_path)

    with application_lock(loaded.application_id, echo):
        ensure_partition(instance, loaded.application_id)
        try:
            outcome = run_stoppably(execute, stopped)
        finally:
            remove_staging(staging)
    for problem in outcome.problems if outcome.delivery is not None else []:
        echo(f"warning: run {outcome.run_id[:8]}: {problem} (the package was prepared)")
    if outcome.delivery is None:
        where = "run " + outcome.run_id[:8]
        failed = RunFailed([Problem(str(spec_path), where, p) for p in outcome.problems])
        failed.exit_code = outcome.exit_code  # a step refused the source or a key: 3, as before a run
        raise failed
    return Delivered(
        application_id=loaded.application_id,
        delivery_id=str(outcome.delivery["delivery_id"]),
        path=Path(str(outcome.delivery["delivery_folder"])),
        manifest_sha256=str(outcome.delivery["manifest_sha256"]),
        spec_sha256=loaded.sha256,
        persons=outcome.persons,
        claims=outcome.claims,
        run_id=outcome.run_id,
    )


def _stop(instance: dg.DagsterInstance, process: str, staging: Path, why: str, spec_path: Path) -> None:
    """A stop (SIGTERM, Ctrl-C) of `deliver`: the runs this process started canceled, their step
    processes ended, the staging removed."""
    runs = instance.get_runs(dg.RunsFilter(tags={PROCESS_TAG: process}))
    for run in runs:
        cancel_run(instance, run.run_id, why)
    if stop_step_processes():  # their end reads to the executor as a failure, which it reports
        time.sleep(0.5)
        for run in runs:
            cancel_run(instance, run.run_id, why, even_if_failed=True)
    remove_staging(staging)
    time.sleep(0.2)  # a file the run was opening as the signal came: made by now, removed next
    stop_step_processes()  # a step the executor started meanwhile (the next scan group's)
    for run in runs:
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)  # and the slot it claimed
    remove_staging(staging)
    print(
        f"error: {spec_path}: run {runs[0].run_id[:8] if runs else '(not started)'}: {why}; the run is canceled "
        "and its staging removed; nothing was delivered",
        file=sys.stderr,
    )


def cancel_run(instance: dg.DagsterInstance, run_id: str, why: str, even_if_failed: bool = False) -> None:
    """Mark the run canceled (if it started and has not ended, or `even_if_failed`: the failure its
    executor reported for the steps a stop ended) and free its pool slots."""
    run = instance.get_run_by_id(run_id)
    if run is not None and (not run.is_finished or (even_if_failed and run.status == dg.DagsterRunStatus.FAILURE)):
        instance.report_run_canceled(run, message=why)
    instance.event_log_storage.free_concurrency_slots_for_run(run_id)


def failure_exit_code(result: dg.ExecuteInProcessResult | dg.JobExecutionResult) -> int:
    """The exit code a failed run's refusal asks for (the highest of its steps'), else 1."""
    codes = [RunFailed.exit_code]
    for event in result.get_step_failure_events():
        failure = event.step_failure_data.user_failure_data
        value = failure.metadata.get(EXIT_CODE) if failure is not None else None
        if isinstance(value, dg.IntMetadataValue) and value.value is not None:
            codes.append(value.value)
    return max(codes)


def failure_messages(result: dg.ExecuteInProcessResult | dg.JobExecutionResult) -> list[str]:
    """What stopped the run, one sentence each: a step's `dg.Failure` (a refused input or a failed
    blocking check, see defs/failures.py) as it was written, else the root cause of its error.
    Warnings (the source's data quality) are shown in the UI and do not stop a delivery."""
    messages = []
    for event in result.get_step_failure_events():
        failure = event.step_failure_data.user_failure_data
        if failure is not None and failure.description:
            messages.append(f"step {_asset_of(event.step_key)} failed: {failure.description}")
            continue
        error = event.step_failure_data.error
        while error is not None and error.cause is not None:
            error = error.cause
        text = error.message.strip().splitlines()[-1] if error and error.message.strip() else "failed"
        messages.append(f"step {_asset_of(event.step_key)} failed: {text}")
    return list(dict.fromkeys(messages))  # scan groups failing alike: said once


def _asset_of(step_key: str | None) -> str:
    """The asset a step belongs to: `cohort` for each of its steps (`cohort.first_pass_group[ar_2019]`)."""
    return (step_key or "?").partition(".")[0]
