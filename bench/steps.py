"""The newest run's steps in the Dagster instance at DAGSTER_HOME, as Markdown table rows:
where inside `deliver` the time went (bench/run.py adds them to bench/RESULTS.md)."""

from __future__ import annotations

import dagster as dg


def main() -> None:
    with dg.DagsterInstance.get() as instance:
        run = instance.get_runs(limit=1)[0]
        stats = instance.get_run_stats(run.run_id)
        print(f"| (whole run) | {stats.end_time - stats.start_time:.1f} |")
        steps = instance.get_run_step_stats(run.run_id)
        steps = [s for s in steps if s.start_time is not None and s.end_time is not None]  # not skipped ones
        for step in steps:
            print(f"| {step.step_key} | {step.end_time - step.start_time:.1f} |")
        scans = [s for s in steps if "pass_group[" in s.step_key]  # the cohort's scan steps, both passes
        if scans:
            span = max(s.end_time for s in scans) - min(s.start_time for s in scans)
            busy = sum(s.end_time - s.start_time for s in scans)
            print(f"| the passes: first scan step's start to last one's end (their steps' sum {busy:.1f}) | {span:.1f} |")


if __name__ == "__main__":
    main()
