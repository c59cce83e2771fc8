"""The job that delivers one application: every asset and check for one partition, in one process."""

import dagster as dg

deliver_application = dg.define_asset_job(
    "deliver_application",
    selection=dg.AssetSelection.groups("delivery"),
    executor_def=dg.in_process_executor,
    description="Deliver one approved application (one partition of `applications`).",
)
