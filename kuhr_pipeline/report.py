"""Small renderings for people: previews and counts as rows of text, for the Dagster UI's tables.

Callers hand over pseudonymised tables only, but a preview is shown before validation has run,
so any run of 11 or more digits in a cell is hidden as well: free text copied from the source
could carry a fødselsnummer, and metadata is stored in the event log for good.
"""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa

from kuhr_pipeline.staging import Staging

_LONG_NUMBER = re.compile(r"[0-9]{11,}")
_PSEUDONYM = re.compile(r"[0-9a-f]{32}")
HIDDEN = "‹number hidden›"


def cell_text(value: object) -> str:
    """A value as shown: lists joined, and any run of 11 or more digits hidden (pseudonyms kept)."""
    if value is None:
        return ""
    text = ", ".join(str(v) for v in value) if isinstance(value, list) else str(value)
    return text if _PSEUDONYM.fullmatch(text) else _LONG_NUMBER.sub(HIDDEN, text)


def preview(path: Path, limit: int, staging: Staging) -> tuple[list[str], list[dict[str, str]]]:
    """The column names and first rows (as text) of a sealed Parquet file, reading only those rows' batch."""
    with staging.parquet_file(path) as parquet:
        names = list(parquet.schema_arrow.names)
        first = next(parquet.iter_batches(batch_size=limit), None)
    rows = pa.Table.from_batches([first]).slice(0, limit).to_pylist() if first is not None else []
    return names, [{name: cell_text(row[name]) for name in names} for row in rows]


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
