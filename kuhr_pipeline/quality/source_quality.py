"""Data quality of the source, reported and never blocking, on a bounded sample.

The sample is the first batch of every year in the period (at most SAMPLE_ROWS_PER_YEAR rows
each), without `pasient_fnr`: GX never sees a national id, and the sample is never written down
(the report holds counts only).

The cohort step starts the check while it scans the source (`check_source_quality_meanwhile`):
GX works in its own process on the other core, and the check on the cohort then reads the report
of its own run (`save_source_quality`, `load_source_quality`) instead of waiting for GX.
"""

from __future__ import annotations

import json
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa

from kuhr_pipeline.application.model import ApplicationSpec
from kuhr_pipeline.catalogue import load_catalogue
from kuhr_pipeline.quality.leak_guard import text_holds_fodselsnummer
from kuhr_pipeline.quality.suites import load_suite_file
from kuhr_pipeline.quality.validate import ExpectationOutcome, ValidationReport, validate_table
from kuhr_pipeline.source.scan import Source, head
from kuhr_pipeline.source.schema import FILE_COLUMNS, PARTITION_COLUMN
from kuhr_pipeline.staging import Staging

SAMPLE_ROWS_PER_YEAR = 20_000
SOURCE_QUALITY_FILE = "source_quality.json"  # in the application's staging folder
COLUMNS = [c for c in FILE_COLUMNS if c != "pasient_fnr"]


def source_sample(source: Source, spec: ApplicationSpec) -> pa.Table:
    """The first claims of every year of the period, at most SAMPLE_ROWS_PER_YEAR each."""
    parts = []
    for year in range(spec.period.from_.year, spec.period.to.year + 1):
        start = max(spec.period.from_, spec.period.from_.replace(year=year, month=1, day=1))
        end = min(spec.period.to, spec.period.to.replace(year=year, month=12, day=31))
        parts.append(head(source, COLUMNS, (start, end), SAMPLE_ROWS_PER_YEAR))
    return pa.concat_tables(parts)


def source_suite() -> list[dict[str, object]]:
    practice_types = list(load_catalogue().code_lists["praksistype"].codes)
    return [
        *load_suite_file("source"),
        {
            "type": "expect_column_values_to_be_in_set",
            "kwargs": {"column": "behandler_praksistype", "value_set": practice_types},
        },
    ]


UNKNOWN_COLUMN = "expect_column_to_be_in_the_source_contract"


def check_source_quality(source: Source, spec: ApplicationSpec) -> tuple[ValidationReport, int]:
    sample = source_sample(source, spec)
    report = validate_table("source", sample, source_suite())
    report.outcomes += [ExpectationOutcome(UNKNOWN_COLUMN, name, success=False) for name in unknown_columns(source)]
    return report, sample.num_rows


def unknown_columns(source: Source) -> list[str]:
    """The source's columns the contract does not name (never read, never delivered), by name; a
    name that looks like a national id is not repeated."""
    names = {name for name in source.dataset.schema.names if name not in FILE_COLUMNS and name != PARTITION_COLUMN}
    for fragment in source.dataset.get_fragments():
        names |= {name for name in fragment.physical_schema.names if name not in FILE_COLUMNS}
    return sorted("(a name that looks like a national id)" if text_holds_fodselsnummer(n) else n for n in names)


def check_source_quality_meanwhile(source: Source, spec: ApplicationSpec) -> Future[tuple[ValidationReport, int]]:
    """`check_source_quality` on a thread of its own (it mostly waits for the GX process)."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kuhr-source-quality")
    try:
        return pool.submit(check_source_quality, source, spec)
    finally:
        pool.shutdown(wait=False)


def keep_source_quality(checking: Future[tuple[ValidationReport, int]], staging: Staging, run_id: str) -> str | None:
    """Wait for the check started by `check_source_quality_meanwhile` and keep its report for the
    run's check. A failure here stops nothing: the check samples the source again itself and
    reports what fails there; returned is a warning for the log (None when kept)."""
    try:
        save_source_quality(staging, run_id, *checking.result())
    except Exception as error:  # any failure of the sample: the check's own run reports it
        return f"source quality: the sample taken while scanning failed ({type(error).__name__})"
    return None


def save_source_quality(staging: Staging, run_id: str, report: ValidationReport, rows: int) -> None:
    """Keep a run's report for that run's check (counts only; written whole or not at all)."""
    body = {"run_id": run_id, "sample_rows": rows, "report": report.to_json()}
    staging.write_small(SOURCE_QUALITY_FILE, json.dumps(body).encode("utf-8"))


def load_source_quality(path: Path, run_id: str) -> tuple[ValidationReport, int] | None:
    """The report `run_id` kept, if this run kept one (another run's is never taken for it)."""
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    if body.get("run_id") != run_id:
        return None
    return ValidationReport.from_json(body["report"]), int(body["sample_rows"])
