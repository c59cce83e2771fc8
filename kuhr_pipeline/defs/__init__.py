"""Dagster wiring only: partitions, assets, checks, resources, jobs, sensors, schedules."""

from __future__ import annotations

import dagster as dg

from kuhr_pipeline.defs import assets, checks, cohort_steps, delivery_steps
from kuhr_pipeline.defs.estimates import estimate_application
from kuhr_pipeline.defs.jobs import (
    deliver_application,
    deliver_application_celery,
    deliver_application_multiprocess,
)
from kuhr_pipeline.defs.loggers import pipeline_lines
from kuhr_pipeline.defs.resources import default_resources
from kuhr_pipeline.defs.schedules import recurring_deliveries
from kuhr_pipeline.defs.sensors import (
    APPLICATIONS_OVERVIEW,
    new_applications,
    release_dead_runs_sensor,
    staging_cleanup_on_cancel,
    staging_cleanup_on_failure,
)
from kuhr_pipeline.defs.telemetry import force_telemetry_off

force_telemetry_off()


def build_definitions(resources: dict[str, object] | None = None) -> dg.Definitions:
    return dg.Definitions(
        assets=[
            assets.application,
            cohort_steps.cohort,
            assets.extract,
            assets.statistics,
            delivery_steps.delivery,
            APPLICATIONS_OVERVIEW,
        ],
        asset_checks=[
            checks.cohort_is_not_empty,
            checks.extract_passes_validation,
            checks.statistics_passes_validation,
            checks.source_data_quality,
        ],
        jobs=[deliver_application, deliver_application_multiprocess, deliver_application_celery, estimate_application],
        sensors=[new_applications, staging_cleanup_on_failure, staging_cleanup_on_cancel, release_dead_runs_sensor],
        schedules=[recurring_deliveries],
        resources=resources or default_resources(),
        # A UI "Materialize" or `dagster asset materialize` runs the same way as `deliver`: one process.
        executor=dg.in_process_executor,
        # Dagster's console logger stays the default; `deliver` shows pipeline_lines unless -v.
        loggers={"console": dg.colored_console_logger, "pipeline_lines": pipeline_lines},
    )
