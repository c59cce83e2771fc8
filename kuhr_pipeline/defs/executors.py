"""Where a `deliver` runs its steps: in its own process (the default), one process per step on
this machine, or on Celery workers. The same steps and the same bytes whichever runs them.

Steps outside this process rebuild the definitions from `kuhr_pipeline.definitions` and use
their own deployment's folders and keys (the environment): step processes inherit this command's,
Celery workers have their own and refuse a run of another deployment (defs/runs.py).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from pathlib import Path

import dagster as dg

from kuhr_pipeline import settings
from kuhr_pipeline.defs.jobs import JOB_OF_EXECUTOR
from kuhr_pipeline.errors import KuhrError
from kuhr_pipeline.processes import die_with_parent

# A step's task is acknowledged when it ends, not when a worker takes it: the broker gives the
# task of a worker that dies mid-step to another worker, which runs the step again from its inputs.
CELERY_SETTINGS = {"task_acks_late": True, "task_reject_on_worker_lost": True, "worker_prefetch_multiplier": 1}


class NoWorkers(KuhrError):
    """`--executor celery` and no worker answers on the broker (exit 3: the deployment)."""

    exit_code = 3


def multiprocess_job() -> dg.JobDefinition:
    """The delivery job with one process per step, as those processes rebuild it (each of them
    ends with `deliver`'s process)."""
    from kuhr_pipeline.definitions import defs

    die_with_parent()

    return defs.resolve_job_def(JOB_OF_EXECUTOR["multiprocess"])


def celery_job() -> dg.JobDefinition:
    """The delivery job with its steps on Celery workers, as the workers rebuild it."""
    from kuhr_pipeline.definitions import defs

    return defs.resolve_job_def(JOB_OF_EXECUTOR["celery"])


def reconstructable_job(executor: str) -> dg.ReconstructableJob:
    return dg.reconstructable({"multiprocess": multiprocess_job, "celery": celery_job}[executor])


def run_config_elsewhere(executor: str) -> dict[str, object]:
    """The run config that steps in other processes need: for Celery the broker and the task
    settings above. Never folders or keys: each step uses its deployment's own (and refuses a
    run launched by another deployment)."""
    if executor != "celery":
        return {}
    return {
        "execution": {
            "config": {
                "broker": settings.celery_broker(),
                "backend": "rpc://",
                "config_source": {**CELERY_SETTINGS, "task_default_queue": settings.celery_queue()},
            }
        }
    }


def require_workers(executor: str, spec_path: Path) -> None:
    """For Celery: at least one worker answers on the broker (else the run would wait for ever)."""
    if executor != "celery":
        return
    from celery import Celery

    broker = settings.celery_broker()
    app = Celery(broker=broker)
    try:
        answers = app.control.ping(timeout=3.0)
    except Exception as error:  # each transport has its own (refused login, no such host, …)
        answers, why = [], f"the broker refuses or does not answer ({error})"
    else:
        why = "no Celery worker answers"
    finally:
        app.close()
    if not answers:
        raise NoWorkers.single(
            str(spec_path),
            f"--executor celery ({settings.CELERY_BROKER_VARIABLE}={_without_password(broker)})",
            why,
            "start workers as deploy/README.md says (dagster-celery worker start -A dagster_celery.app -y "
            "deploy/celery.yaml), or deliver with --executor in_process",
        )


def stop_step_processes() -> bool:
    """End the step processes this process started (multiprocess executor) at once: a stopped
    delivery must not go on publishing in a child. A step killed mid-write leaves only temporary
    files in staging (removed next) or a commit the next run completes or undoes. Whether there
    were any."""
    children = multiprocessing.active_children()
    for child in children:
        if child.pid is not None:
            os.kill(child.pid, signal.SIGKILL)
    for child in children:
        child.join(5)
    return bool(children)


def _without_password(url: str) -> str:
    scheme, _, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    return f"{scheme}://{credentials.partition(':')[0]}{at}{host}" if at else url
