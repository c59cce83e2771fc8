"""Runs whose process is gone (SIGKILL, the OOM killer, a lost node) must not block later runs.

A killed `deliver` leaves its run "started" and its `source_scan` pool slot claimed, and Dagster
then makes every later run wait for that slot. `deliver` tags its runs with its process
(`kuhr/process`); before it runs, runs of this host whose process has ended are marked failed
and their slots freed, and slots still held by finished runs are freed too. Runs launched by
the daemon are watched by run monitoring (enabled in both dagster.yaml files).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import dagster as dg

from kuhr_pipeline.processes import is_gone

PROCESS_TAG = "kuhr/process"
IN_PROGRESS = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]


def release_dead_runs(instance: dg.DagsterInstance, echo: Callable[[str], None]) -> list[str]:
    """Mark failed the runs of this host whose process has ended; free every slot that a run
    no longer in progress holds. Returns the run ids released."""
    released = []
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=IN_PROGRESS)):
        process = run.tags.get(PROCESS_TAG)
        if process and is_gone(process):
            instance.report_run_failed(run, message=f"its process ({process}) ended without finishing the run")
            released.append(run.run_id)
    storage = instance.event_log_storage
    for run_id in storage.get_concurrency_run_ids():
        holder = instance.get_run_by_id(run_id)
        if holder is None or holder.is_finished:
            storage.free_concurrency_slots_for_run(run_id)
            if run_id not in released:
                released.append(run_id)
    for run_id in released:
        echo(f"run {run_id[:8]}: its process is gone; marked failed, its pool slots freed")
    return released


def wait_for_pool(
    instance: dg.DagsterInstance, pool: str, application_id: str, echo: Callable[[str], None], poll: float = 2.0
) -> None:
    """Wait, sleeping, until `pool` has a free slot; say once which runs hold it.

    Why here: Dagster 1.13's in-process executor re-checks a blocked claim in a loop without
    sleeping (one core at 100 %). Waiting before the run starts avoids that in all but a race."""
    said: set[str] = set()
    while True:
        release_dead_runs(instance, echo)
        info = instance.event_log_storage.get_concurrency_info(pool)
        holders = sorted({slot.run_id for slot in info.claimed_slots})
        if info.slot_count == 0 or len(info.claimed_slots) < info.slot_count:
            return
        new = [h for h in holders if h not in said]
        if new:
            described = ", ".join(_describe(instance, run_id) for run_id in new)
            echo(f"{application_id}: waiting for pool {pool} ({info.slot_count} slot(s)), held by {described}")
            said.update(new)
        time.sleep(poll)


def _describe(instance: dg.DagsterInstance, run_id: str) -> str:
    run = instance.get_run_by_id(run_id)
    application = run.tags.get("dagster/partition", "?") if run else "?"
    return f"run {run_id[:8]} (application {application})"
