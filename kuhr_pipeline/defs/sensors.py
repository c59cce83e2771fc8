"""Sensors: `new_applications` (each new or changed approved spec adds its partition and one run)
and `staging_cleanup_on_failure` / `staging_cleanup_on_cancel` (a run that ends without delivering
leaves no staging behind)."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass

import dagster as dg

from kuhr_pipeline import clock
from kuhr_pipeline.application.model import APPLICATION_ID_PATTERN
from kuhr_pipeline.applications import OVERVIEW_COLUMNS, SpecFile, overview, survey
from kuhr_pipeline.defs.jobs import deliver_application
from kuhr_pipeline.defs.partitions import applications_partitions
from kuhr_pipeline.defs.resources import KuhrPaths
from kuhr_pipeline.defs.runs import has_package, run_request_for
from kuhr_pipeline.defs.stale_runs import release_dead_runs
from kuhr_pipeline.staging import remove_staging

APPLICATIONS_OVERVIEW = dg.AssetSpec(
    "applications_overview",
    group_name="overview",
    description="Every spec file in KUHR_APPLICATIONS: approved or why not (refused, expired, withdrawn), "
    "last delivery, next scheduled one. Recorded by the sensor new_applications whenever it changes.",
    kinds={"yaml"},
)


@dg.sensor(
    job=deliver_application,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Watches KUHR_APPLICATIONS and prepares each new or changed approved spec (a reviewer releases it); "
    "a spec with a package in the audit log is never requested again. A refused file is named once per version; "
    "the applications overview is recorded when it changes.",
)
def new_applications(context: dg.SensorEvaluationContext, paths: KuhrPaths) -> dg.SensorResult:
    files = survey(paths.applications_dir())
    cursor = _Cursor.parse(context.cursor)
    refused_now = {str(f.path): f.version for f in files if not f.deliverable}
    newly_refused = [f for f in files if not f.deliverable and cursor.refused.get(str(f.path)) != f.version]
    for f in newly_refused:
        context.log.warning(f"{f.path}: {f.status}, not delivered: {f.why}")
    requests: list[dg.RunRequest] = []
    new_partitions: list[str] = []
    for f in files:
        if f.loaded is None:
            continue
        run_key = f"{f.loaded.application_id}:{f.loaded.sha256[:16]}"
        if _has_run(context.instance, run_key) or has_package(paths.deliveries_dir(), f.loaded):
            continue  # on its way, or prepared or released (the audit log decides): never a second request
        if not context.instance.has_dynamic_partition(PARTITIONS, f.loaded.application_id):
            new_partitions.append(f.loaded.application_id)
        requests.append(run_request_for(f.loaded, run_key=run_key))
    unwanted = _unwanted_partitions(context, {f.application_id for f in files})
    rows = overview(files, paths.deliveries_dir(), clock.today(), last_run_statuses(context.instance))
    digest = hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[
            *([applications_partitions.build_add_request(new_partitions)] if new_partitions else []),
            *([applications_partitions.build_delete_request(unwanted)] if unwanted else []),
        ],
        asset_events=[] if digest == cursor.overview else [_overview_event(rows)],
        cursor=json.dumps({"refused": refused_now, "overview": digest}),
        skip_reason=None if requests else _skip_reason(files, newly_refused),
    )


@dataclass(frozen=True)
class _Cursor:
    """What the sensor has already said: each refused file's version, and the overview's digest."""

    refused: dict[str, str]
    overview: str

    @classmethod
    def parse(cls, text: str | None) -> _Cursor:
        try:
            value = json.loads(text or "{}")
            return cls(dict(value.get("refused", {})), str(value.get("overview", "")))
        except (ValueError, TypeError, AttributeError):
            return cls({}, "")


PARTITIONS = applications_partitions.name or "applications"
RUN_KEY_TAG = "dagster/run_key"  # the tag Dagster gives a run made from a RunRequest with a run key


def _has_run(instance: dg.DagsterInstance, run_key: str) -> bool:
    return bool(instance.get_run_ids(filters=dg.RunsFilter(tags={RUN_KEY_TAG: run_key}), limit=1))


def _skip_reason(files: list[SpecFile], newly_refused: list[SpecFile]) -> str:
    """The tick's message: each file refused since the last tick and why, else a count."""
    if newly_refused:
        return "; ".join(f"{f.path.name}: {f.status}: {f.why}" for f in newly_refused)
    waiting = sum(not f.deliverable for f in files)
    return (
        f"no new or changed approved spec ({sum(f.deliverable for f in files)} approved and delivered or on their way"
        + (f", {waiting} not deliverable: see the asset applications_overview)" if waiting else ")")
    )


def _overview_event(rows: list[dict[str, object]]) -> dg.AssetMaterialization:
    schema = dg.TableSchema(
        columns=[dg.TableColumn(name, "string", description=text) for name, text in OVERVIEW_COLUMNS.items()]
    )
    counts = Counter(str(r["status"]) for r in rows)
    return dg.AssetMaterialization(
        asset_key=APPLICATIONS_OVERVIEW.key,
        description=", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no spec files",
        metadata={
            "applications": dg.MetadataValue.table(
                records=[dg.TableRecord({k: str(v) for k, v in row.items()}) for row in rows], schema=schema
            ),
            "approved": counts.get("approved", 0),
            "not_deliverable": len(rows) - counts.get("approved", 0),
        },
    )


def _unwanted_partitions(context: dg.SensorEvaluationContext, declared: set[str | None]) -> list[str]:
    """Partitions that are no application id (added by hand through the API): reported, then
    removed. A partition whose spec file left the folder keeps its history: said, never removed."""
    unwanted = []
    for key in context.instance.get_dynamic_partitions(PARTITIONS):
        if not re.fullmatch(APPLICATION_ID_PATTERN, key):
            context.log.warning(f"partition {key!r} is not an application id: removed")
            unwanted.append(key)
        elif None not in declared and key not in declared:
            context.log.info(f"partition {key} has no spec file in KUHR_APPLICATIONS: kept with its history")
    return unwanted


def last_run_statuses(instance: dg.DagsterInstance) -> dict[str, str]:
    """The newest delivery run's status per application (partition), for the overview."""
    statuses: dict[str, str] = {}
    for record in instance.get_run_records(filters=dg.RunsFilter(job_name=deliver_application.name), limit=200):
        application_id = record.dagster_run.tags.get("dagster/partition")
        if application_id and application_id not in statuses:  # newest first
            statuses[application_id] = record.dagster_run.status.value.lower()
    return statuses


def _remove_staging_of(context: dg.RunStatusSensorContext, paths: KuhrPaths) -> None:
    """The staging of the run's application, found by its partition key (an application_id)."""
    application_id = context.dagster_run.tags.get("dagster/partition", "")
    if re.fullmatch(APPLICATION_ID_PATTERN, application_id):
        remove_staging(paths.staging_dir(application_id, context.dagster_run.run_id))
        context.log.info(f"{application_id}: staging of run {context.dagster_run.run_id[:8]} removed")


@dg.run_failure_sensor(
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="A failed run's staging (person-level rows) is removed.",
)
def staging_cleanup_on_failure(context: dg.RunFailureSensorContext, paths: KuhrPaths) -> None:
    _remove_staging_of(context, paths)


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.CANCELED,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="A canceled run's staging (person-level rows) is removed.",
)
def staging_cleanup_on_cancel(context: dg.RunStatusSensorContext, paths: KuhrPaths) -> None:
    _remove_staging_of(context, paths)


@dg.sensor(
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Runs whose process is gone (killed, out of memory) are marked failed and their pool slots "
    "freed, so that they never block the runs after them.",
)
def release_dead_runs_sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    released = release_dead_runs(context.instance, context.log.info)
    return dg.SkipReason(f"released {len(released)} run(s)" if released else "every run in progress is alive")
