"""Dagster wiring only: partitions, assets, checks, resources, jobs, sensors, schedules."""

from __future__ import annotations

import dagster as dg

from kuhr_pipeline.defs import assets, checks
from kuhr_pipeline.defs.jobs import deliver_application, deliver_application_celery
from kuhr_pipeline.defs.resources import default_resources
from kuhr_pipeline.defs.schedules import recurring_deliveries
from kuhr_pipeline.defs.sensors import (
    new_applications,
    release_dead_runs_sensor,
    staging_cleanup_on_cancel,
    staging_cleanup_on_failure,
)
from kuhr_pipeline.defs.telemetry import force_telemetry_off

force_telemetry_off()


def build_definitions(resources: dict[str, object] | None = None) -> dg.Definitions:
    return dg.Definitions(
        assets=[assets.application, assets.cohort, assets.extract, assets.statistics, assets.delivery],
        asset_checks=[
            checks.cohort_is_not_empty,
            checks.extract_passes_validation,
            checks.statistics_passes_validation,
            checks.source_data_quality,
        ],
        jobs=[deliver_application, deliver_application_celery],
        sensors=[new_applications, staging_cleanup_on_failure, staging_cleanup_on_cancel, release_dead_runs_sensor],
        schedules=[recurring_deliveries],
        resources=resources or default_resources(),
    )
