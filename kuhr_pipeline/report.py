"""Small renderings for people: counts as rows of text for the Dagster UI's tables, and progress
lines. Never a table's rows: metadata is stored in the event log for good (contract: no
person-level values in metadata, not even a preview)."""

from __future__ import annotations

import re

SMALL_COHORT_ADVICE = (
    "the cohort has {persons} persons: a person-level delivery this small is legal but rarely "
    "meant; check the spec before a reviewer releases it"
)


def months_by_year(counts: dict[str, str]) -> list[dict[str, str]]:
    """Counts keyed `YYYY-MM` as one row per year and a column per month: a page, not 72 lines."""
    years: dict[str, dict[str, str]] = {}
    for key, count in counts.items():
        year, month = key.split("-")
        years.setdefault(year, {"year": year, **{f"{m:02d}": "" for m in range(1, 13)}})[month] = count
    return [years[y] for y in sorted(years)]


_PROGRESS = re.compile(r"(?P<stage>.+): (?P<seen>[0-9,]+) of (?P<total>[0-9,]+) claims read")


def progress_line(stage: str, seen: int, total: int) -> str:
    """A pass's progress as a log line (the command line draws it as a bar: `progress_of`)."""
    return f"{stage}: {seen:,} of {total:,} claims read"


def progress_of(line: str) -> tuple[str, int, int] | None:
    """(stage, seen, total) of a `progress_line`, else None."""
    found = _PROGRESS.fullmatch(line)
    if found is None:
        return None
    return found["stage"], int(found["seen"].replace(",", "")), int(found["total"].replace(",", ""))
