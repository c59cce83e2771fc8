"""Data quality of the source, reported and never blocking, on a bounded sample.

The sample is the first batch of every year in the period (at most SAMPLE_ROWS_PER_YEAR rows
each), without `pasient_fnr`: GX never sees a national id, and the sample is never written down.
"""

from __future__ import annotations

import pyarrow as pa

from kuhr_pipeline.catalogue import load_catalogue
from kuhr_pipeline.quality.suites import load_suite_file
from kuhr_pipeline.quality.validate import ValidationReport, validate_table
from kuhr_pipeline.source.scan import Source, head
from kuhr_pipeline.source.schema import FILE_COLUMNS
from kuhr_pipeline.spec.model import ApplicationSpec

SAMPLE_ROWS_PER_YEAR = 20_000
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


def check_source_quality(source: Source, spec: ApplicationSpec) -> tuple[ValidationReport, int]:
    sample = source_sample(source, spec)
    return validate_table("source", sample, source_suite()), sample.num_rows
