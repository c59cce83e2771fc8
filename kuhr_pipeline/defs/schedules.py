"""Schedule `recurring_deliveries`: a daily tick that requests each due recurring delivery (it is
prepared; a reviewer releases it), and otherwise says why nothing is delivered today. A failed
run is tried again by the next day's tick, until the period's package is prepared or the
approval ends."""

import dagster as dg

from kuhr_pipeline.applications import survey
from kuhr_pipeline.defs.jobs import deliver_application
from kuhr_pipeline.defs.resources import KuhrPaths
from kuhr_pipeline.defs.runs import ensure_partition, run_request_for
from kuhr_pipeline.scheduling import is_due, last_delivery_date, not_due_reason, period_label


@dg.schedule(
    job=deliver_application,
    cron_schedule="0 6 * * *",
    execution_timezone="Europe/Oslo",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Daily: one run per application whose delivery.schedule is due and whose approval is valid.",
)
def recurring_deliveries(
    context: dg.ScheduleEvaluationContext, paths: KuhrPaths
) -> list[dg.RunRequest] | dg.SkipReason:
    today = context.scheduled_execution_time.date()
    requests, reasons = [], []
    for spec_file in survey(paths.applications_dir(), today=today):
        name = spec_file.application_id or spec_file.path.name
        if spec_file.loaded is None:
            if spec_file.status == "expired":
                context.log.warning(f"{spec_file.path}: approval expired; not delivered ({spec_file.why})")
            elif spec_file.status != "approved":
                context.log.warning(f"{spec_file.path}: {spec_file.status}, not delivered: {spec_file.why}")
            reasons.append(f"{name}: {spec_file.status}: {spec_file.why}")
            continue
        loaded = spec_file.loaded
        schedule = loaded.spec.delivery.schedule
        if schedule is None:
            continue
        last = last_delivery_date(paths.deliveries_dir(), loaded.application_id)
        if not is_due(schedule, today, last):
            reasons.append(f"{name}: {not_due_reason(schedule, today, last)}")
            context.log.info(reasons[-1])
            continue
        ensure_partition(context.instance, loaded.application_id)
        # The period's package is owed (none prepared or released in it, from the audit log): a
        # repeat of an unchanged spec on purpose, tried once a day until one is prepared.
        run_key = f"{loaded.application_id}:{period_label(schedule, today)}:{today}"
        requests.append(run_request_for(loaded, run_key=run_key, again=True))
    if requests:
        return requests
    return dg.SkipReason("; ".join(reasons) or "no approved application has a delivery.schedule")
