"""Schedule `recurring_deliveries`: a daily tick that requests each due recurring delivery."""

import dagster as dg

from kuhr_pipeline.defs.jobs import deliver_application
from kuhr_pipeline.defs.resources import KuhrPaths
from kuhr_pipeline.defs.runs import ensure_partition, run_request_for
from kuhr_pipeline.errors import KuhrError
from kuhr_pipeline.scheduling import is_due, last_delivery_date, period_label
from kuhr_pipeline.spec import load_spec, spec_files


@dg.schedule(
    job=deliver_application,
    cron_schedule="0 6 * * *",
    execution_timezone="Europe/Oslo",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Daily: one run per application whose delivery.schedule is due and whose approval is valid.",
)
def recurring_deliveries(context: dg.ScheduleEvaluationContext, paths: KuhrPaths) -> list[dg.RunRequest]:
    today = context.scheduled_execution_time.date()
    requests = []
    for path in spec_files(paths.applications_dir()):
        try:
            loaded = load_spec(path, today=today)
        except KuhrError as refused:
            fields = {p.field for p in refused.problems}
            if "approval.valid_until" in fields:
                context.log.warning(f"{path}: approval expired; not delivered ({refused})")
            else:
                context.log.warning(f"{path}: refused, not delivered: {refused}")
            continue
        except Exception as error:  # one bad file never stops the others
            context.log.error(f"{path}: could not be read ({error.__class__.__name__}); skipped")
            continue
        schedule = loaded.spec.delivery.schedule
        if schedule is None:
            continue
        last = last_delivery_date(paths.deliveries_dir(), loaded.application_id)
        if not is_due(schedule, today, last):
            context.log.info(f"{loaded.application_id}: {schedule} delivery not due (last {last})")
            continue
        ensure_partition(context.instance, loaded.application_id)
        label = period_label(schedule, today)
        requests.append(run_request_for(loaded, run_key=f"{loaded.application_id}:{label}"))
    return requests
