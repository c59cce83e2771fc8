"""The statistics table's disclosure rules, checked on the output (GX has no margin expectations)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from kuhr_pipeline.disclosure.suppression import pinned
from kuhr_pipeline.quality.suites import load_suite_file
from kuhr_pipeline.quality.validate import ExpectationOutcome, ValidationReport, validate_tables
from kuhr_pipeline.staging import Staging

MEASURES = ("persons", "claims", "sum_egenandel", "sum_refusjon")
ADDITIVE = ["claims", "sum_egenandel", "sum_refusjon"]


def _shown_small(table: pa.Table, min_cell: int, dimensions: list[str]) -> int:
    if "persons" not in table.column_names:
        return 0
    shown = pc.invert(table.column("suppressed"))
    persons = table.column("persons")
    small = pc.and_(pc.greater(persons, 0), pc.less(persons, min_cell))
    return int(pc.sum(pc.fill_null(pc.and_(shown, small), False)).as_py() or 0)


def _suppressed_not_null(table: pa.Table, min_cell: int, dimensions: list[str]) -> int:
    hidden = table.filter(table.column("suppressed"))
    return sum(hidden.num_rows - hidden.column(m).null_count for m in MEASURES if m in table.column_names)


def _pinned(table: pa.Table, min_cell: int, dimensions: list[str]) -> int:
    return len(pinned(table, dimensions, ADDITIVE))


RULES: dict[str, Callable[[pa.Table, int, list[str]], int]] = {
    "expect_shown_rows_to_count_at_least_min_cell_persons": _shown_small,
    "expect_suppressed_rows_to_have_null_measures": _suppressed_not_null,
    "expect_no_suppressed_value_fixed_by_the_whole_table": _pinned,
}


def check_rules(table: pa.Table, types: list[str], min_cell: int, dimensions: list[str]) -> list[ExpectationOutcome]:
    outcomes = []
    for kind in types:
        bad = RULES[kind](table, min_cell, dimensions)
        outcomes.append(ExpectationOutcome(kind, "(table)", bad == 0, table.num_rows, bad))
    return outcomes


def validate_statistics(path: Path, min_cell: int, dimensions: list[str], staging: Staging) -> ValidationReport:
    """The statistics suite from `expectations/statistics.json`: GX expectations plus the rules."""
    suite = load_suite_file("statistics")
    table = staging.read_parquet(path)
    gx_part = [e for e in suite if e["type"] not in RULES and e["kwargs"].get("column", "") in table.column_names]
    report = validate_tables("statistics", [path], gx_part, staging) if gx_part else ValidationReport("statistics")
    report.outcomes += check_rules(table, [e["type"] for e in suite if e["type"] in RULES], min_cell, dimensions)
    return report
