"""Jobs: deliver one application (all assets and checks of one partition)."""

import dagster as dg
from dagster_celery import celery_executor

deliver_application = dg.define_asset_job(
    "deliver_application",
    selection=dg.AssetSelection.groups("delivery"),
    executor_def=dg.in_process_executor,
    description="Deliver one approved application (one partition of `applications`), in one process.",
)

# Scale-out: the same assets, each step run by a Celery worker (broker: RabbitMQ or Redis).
# Steps share files in the staging area, so workers need DAGSTER_HOME/staging on a shared disk.
deliver_application_celery = dg.define_asset_job(
    "deliver_application_celery",
    selection=dg.AssetSelection.groups("delivery"),
    executor_def=celery_executor,
    description="Deliver one application with its steps executed by Celery workers (see deploy/README.md).",
)
