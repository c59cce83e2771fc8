"""The cohort asset as steps: the passes fan out over scan groups (Dagster dynamic outputs) with a
merge between them and a gather after them. Wiring only: the work is in `kuhr_pipeline.cohort`.

In one process (`deliver_application`, a UI "Materialize") the period is one group: the same steps,
one of each, as fast as one pass over the source. Where steps run in processes or on workers of
their own, each year of the period is a group of its own, so that both passes spread over them;
the source_scan pool (dagster.yaml) says how many scan steps run at once.
"""

import dagster as dg

from kuhr_pipeline.application import LoadedSpec
from kuhr_pipeline.cohort import (
    CohortClaims,
    FoundCohort,
    GroupClaims,
    GroupFound,
    ScanGroup,
    cohort_claims,
    find_cohort_in,
    first_pass,
    pseudonymisers,
    scan_groups,
    second_pass,
)
from kuhr_pipeline.cohort.attrition import ATTRITION_COLUMNS
from kuhr_pipeline.cohort.windows import Progress, reach
from kuhr_pipeline.defs.failures import plain_failures
from kuhr_pipeline.defs.partitions import SOURCE_SCAN_POOL, applications_partitions
from kuhr_pipeline.defs.resources import KuhrPaths, PseudonymKey
from kuhr_pipeline.defs.runs import run_staging, stored_run
from kuhr_pipeline.defs.tables import arrow_table, counts_table, row_count, text_table
from kuhr_pipeline.identity.population import load_population
from kuhr_pipeline.quality import gx_process
from kuhr_pipeline.quality.source_quality import check_source_quality_meanwhile, keep_source_quality
from kuhr_pipeline.report import months_by_year, progress_line
from kuhr_pipeline.source import open_source
from kuhr_pipeline.source.claim_ids import (
    CheckedYears,
    require_checked_source,
    require_distinct_claim_ids,
    source_version,
)
from kuhr_pipeline.source.scan import Source
from kuhr_pipeline.staging import remove_stale_staging

# Executors that run every step in the run's own process (`deliver`'s is Dagster's execute_in_process)
IN_ONE_PROCESS = frozenset({"in_process", "execute_in_process_executor"})
LOG_STEPS = 10  # progress lines per pass, whatever the size of the source

# A scan that fails for a reason of the machine (a step process killed, a read error on a shared
# disk) is run again once; a KuhrError (the input must be fixed first) is not (plain_failures).
SCAN_RETRY = dg.RetryPolicy(max_retries=1, delay=5)


def _progress(log: dg.DagsterLogManager, total: int) -> Progress:
    """Log a pass at every tenth of the claims it reads (one event each in the log)."""
    seen: dict[str, int] = {}
    step = max(1, -(-total // LOG_STEPS))

    def report(stage: str, rows: int) -> None:
        before = seen.get(stage, 0)
        seen[stage] = before + rows
        if before // step != seen[stage] // step:
            log.info(progress_line(stage, seen[stage], total))

    return report


@dg.op(out=dg.DynamicOut(ScanGroup))
@plain_failures
def cohort_groups(
    context: dg.OpExecutionContext, application: LoadedSpec, paths: KuhrPaths, pseudonym_key: PseudonymKey
) -> list[dg.DynamicOutput[ScanGroup]]:
    """The parts of the period each pass reads a step at a time, after the source's check: the
    whole period in one process, a year each where steps run apart."""
    staging = run_staging(context, application.application_id, paths, pseudonym_key)  # a bad key fails here
    for stale in remove_stale_staging(staging.folder):  # runs of one application never overlap
        context.log.info(f"cohort: removed the staging a stopped run left ({stale})")
    spec = application.spec
    source = open_source(paths.source_dir())
    start, end = reach(spec)
    source.require_sound_period(start, end, spec.period.from_)
    checked = CheckedYears(paths.source_checks_dir(), pseudonym_key.master_key())
    require_distinct_claim_ids(source, start.year, end.year, checked, context.log.info)
    # what was checked is what every scan step reads: the source's identity goes with the run
    context.instance.add_run_tags(context.run_id, {SOURCE_TAG: source_version(source, start.year, end.year)})
    groups = scan_groups(spec, per_year=context.job_def.executor_def.name not in IN_ONE_PROCESS)
    context.log.info(f"cohort: {len(groups)} scan group(s): {', '.join(g.name for g in groups)}")
    return [dg.DynamicOutput(group, mapping_key=group.name) for group in groups]


SOURCE_TAG = "kuhr/source_version"


def checked_source(context: dg.OpExecutionContext, paths: KuhrPaths, application: LoadedSpec) -> Source:
    """The source, once it is found to be the one the run checked (in every step, on any worker)."""
    source = open_source(paths.source_dir())
    start, end = reach(application.spec)
    require_checked_source(source, start.year, end.year, stored_run(context).tags.get(SOURCE_TAG, ""))
    return source


@dg.op(pool=SOURCE_SCAN_POOL, retry_policy=SCAN_RETRY)
@plain_failures
def first_pass_group(
    context: dg.OpExecutionContext,
    application: LoadedSpec,
    group: ScanGroup,
    paths: KuhrPaths,
    pseudonym_key: PseudonymKey,
) -> GroupFound:
    """Pass 1 over one scan group. The first group also has GX check a sample of the source
    meanwhile, for the source_data_quality check."""
    staging = run_staging(context, application.application_id, paths, pseudonym_key)
    source = checked_source(context, paths, application)
    quality = None
    if group.index == 0:
        gx_process.start()  # Great Expectations loads in its own process while the source is scanned
        quality = check_source_quality_meanwhile(source, application.spec)
    first, last = group.period
    total = source.rows_in_years(first.year, last.year)
    context.log.info(f"cohort: scanning {source.path}, {first} – {last}: {total:,} claims in its years")
    found = first_pass(source, application.spec, group, staging, _progress(context.log, total))
    warning = keep_source_quality(quality, staging, context.run_id) if quality is not None else None
    if warning:
        context.log.warning(warning)
    return found


@dg.op
@plain_failures
def merged_cohort(
    context: dg.OpExecutionContext,
    application: LoadedSpec,
    groups: list[GroupFound],
    paths: KuhrPaths,
    pseudonym_key: PseudonymKey,
) -> FoundCohort:
    """The groups' pass 1 merged: the cohort (its persons sealed in staging) and the attrition."""
    staging = run_staging(context, application.application_id, paths, pseudonym_key)
    found = find_cohort_in(application.spec, groups, staging, population=load_population(application))
    context.log.info(f"cohort: {found.attrition.masked(found.persons)} persons from {len(groups)} scan group(s)")
    return found


@dg.op(pool=SOURCE_SCAN_POOL, retry_policy=SCAN_RETRY)
@plain_failures
def second_pass_group(
    context: dg.OpExecutionContext,
    application: LoadedSpec,
    cohort: FoundCohort,
    group: GroupFound,
    paths: KuhrPaths,
    pseudonym_key: PseudonymKey,
) -> GroupClaims:
    """Pass 2 over one scan group: its claims of the cohort, pseudonymised, sealed in staging."""
    staging = run_staging(context, application.application_id, paths, pseudonym_key)
    source = checked_source(context, paths, application)
    listed = load_population(application) if application.spec.pseudonym_form == "lopenr" else None
    patients, practitioners = pseudonymisers(application.spec, pseudonym_key.master_key(), listed)
    first, last = group.group.period
    total = source.rows_in_years(first.year, last.year)
    context.log.info(f"cohort: collecting the claims of {first} – {last}")
    progress = _progress(context.log, total)
    return second_pass(source, application.spec, cohort, group, patients, practitioners, staging, progress)


@dg.op
@plain_failures
def gathered_claims(
    context: dg.OpExecutionContext,
    application: LoadedSpec,
    cohort: FoundCohort,
    parts: list[GroupClaims],
    paths: KuhrPaths,
    pseudonym_key: PseudonymKey,
) -> CohortClaims:
    """The groups' claims put together in scan order: the cohort's claims, with its pictures."""
    staging = run_staging(context, application.application_id, paths, pseudonym_key)
    result = cohort_claims(cohort, parts, staging)
    persons, claims = result.attrition.masked(result.persons), result.attrition.masked(result.rows)
    context.log.info(f"cohort: {persons} persons, {claims} claims")
    context.add_output_metadata(
        {
            "persons": persons,
            "claims": claims,
            **row_count(result.rows, claims),
            "attrition": arrow_table(result.attrition.table(), ATTRITION_COLUMNS),
            "persons_per_age_group": counts_table(result.profile.persons_per_age_group, "age at first entry claim"),
            "claims_per_month": text_table(
                ["year", *(f"{m:02d}" for m in range(1, 13))], months_by_year(result.profile.claims_per_month)
            ),
        }
    )
    return result


@dg.graph_asset(partitions_def=applications_partitions, group_name="delivery", kinds={"parquet"})
def cohort(application: LoadedSpec) -> CohortClaims:
    """The cohort (two streaming passes over the source, a step per scan group) and its claims,
    pseudonymised, in staging."""
    groups = cohort_groups(application)
    found_per_group = groups.map(lambda group: first_pass_group(application, group))
    found = merged_cohort(application, found_per_group.collect())
    parts = found_per_group.map(lambda group: second_pass_group(application, found, group))
    return gathered_claims(application, found, parts.collect())
