"""Jobs: deliver one application (all assets and checks of one partition), one per executor.

The steps and their results are the same whichever runs them (`tests/test_celery.py` compares the
plaintext of every data file); what differs is where each step runs.
"""

import dagster as dg
from dagster_celery import celery_executor

_DELIVERY = dg.AssetSelection.groups("delivery")

deliver_application = dg.define_asset_job(
    "deliver_application",
    selection=_DELIVERY,
    executor_def=dg.in_process_executor,
    description="Deliver one approved application (one partition of `applications`), in one process.",
)

# Each step in a process of its own on this machine: what a worker that dies mid-step costs, and
# the executor Dagster's UI uses by default elsewhere. Two at a time: the machine's cores. Each
# step is forked from a server that imported the pipeline once ("forkserver"), not started afresh
# (Dagster's default, "spawn", imports Dagster and pyarrow again in every step: ~2 s a step).
deliver_application_multiprocess = dg.define_asset_job(
    "deliver_application_multiprocess",
    selection=_DELIVERY,
    executor_def=dg.multiprocess_executor.configured(
        {"max_concurrent": 2, "start_method": {"forkserver": {"preload_modules": ["kuhr_pipeline.definitions"]}}}
    ),
    description="Deliver one application with each step in a process of its own.",
)

# Scale-out: the same assets, each step run by a Celery worker (broker: RabbitMQ or Redis).
# Steps share files in the staging area, so workers need DAGSTER_HOME/staging on a shared disk.
deliver_application_celery = dg.define_asset_job(
    "deliver_application_celery",
    selection=_DELIVERY,
    executor_def=celery_executor,
    description="Deliver one application with its steps executed by Celery workers (see deploy/README.md).",
)

JOB_OF_EXECUTOR = {
    "in_process": deliver_application.name,
    "multiprocess": deliver_application_multiprocess.name,
    "celery": deliver_application_celery.name,
}
