"""The statistics table's disclosure rules, checked on the output (GX has no margin expectations).

The attackers' rules rest on the proof (disclosure.proof): the hypercubes, checked against the
delivered table and the true values; and a small table (up to EXACT_CELLS cells) is also solved
by the linear programme itself, for the outsider and for each insider — the only proof of a
pattern that solving the system chose (disclosure.exact), which has no hypercubes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from kuhr_pipeline.disclosure.proof import Proof, prove, prove_exactly
from kuhr_pipeline.disclosure.statistics import StatisticsTable, certificates_of
from kuhr_pipeline.disclosure.suppression import EXACT_CELLS
from kuhr_pipeline.quality.suites import Expectation, load_suite_file
from kuhr_pipeline.quality.validate import ExpectationOutcome, ValidationReport, validate_tables
from kuhr_pipeline.staging import Staging

MEASURES = ("persons", "claims", "sum_egenandel", "sum_refusjon")


@dataclass(frozen=True)
class _Delivered:
    table: pa.Table
    min_cell: int
    proof: Proof


def _shown_small(d: _Delivered) -> int:
    if "persons" not in d.table.column_names:
        return 0
    shown = pc.invert(d.table.column("suppressed"))
    persons = d.table.column("persons")
    small = pc.and_(pc.greater(persons, 0), pc.less(persons, d.min_cell))
    return int(pc.sum(pc.fill_null(pc.and_(shown, small), False)).as_py() or 0)


def _suppressed_not_null(d: _Delivered) -> int:
    hidden = d.table.filter(d.table.column("suppressed"))
    return sum(hidden.num_rows - hidden.column(m).null_count for m in MEASURES if m in d.table.column_names)


def _fixed_by_the_whole_table(d: _Delivered) -> int:
    return len(d.proof.unprotected)


def _fixed_for_an_insider(d: _Delivered) -> int:
    return len(d.proof.exposed_to_an_insider)


RULES: dict[str, Callable[[_Delivered], int]] = {
    "expect_shown_rows_to_count_at_least_min_cell_persons": _shown_small,
    "expect_suppressed_rows_to_have_null_measures": _suppressed_not_null,
    "expect_no_suppressed_value_fixed_by_the_whole_table": _fixed_by_the_whole_table,
    "expect_no_suppressed_value_fixed_for_an_insider": _fixed_for_an_insider,
}


def validate_statistics(
    statistics: StatisticsTable, staging: Staging, dimensions_suite: list[Expectation] | None = None
) -> tuple[ValidationReport, Proof]:
    """The statistics suite from `expectations/statistics.json` (and `dimensions_suite`, what the
    spec asks of the dimensions: the map's kommuner): GX expectations plus the rules, and the proof
    whose figures go into the disclosure report."""
    assert statistics.path and statistics.cube_path and statistics.certificates_path
    suite = load_suite_file("statistics") + (dimensions_suite or [])
    table = staging.read_parquet(statistics.path)
    dimensions = list(statistics.dimensions)
    certificates = certificates_of(staging.read_parquet(statistics.certificates_path))
    cube = staging.read_parquet(statistics.cube_path)
    proof = prove(table, cube, dimensions, certificates) if certificates or table.num_rows > EXACT_CELLS else None
    if table.num_rows <= EXACT_CELLS:  # small: the programme itself, whichever way it was chosen
        proof = prove_exactly(table, cube, dimensions).merged(proof)
    assert proof is not None
    gx_part = [e for e in suite if e["type"] not in RULES and e["kwargs"].get("column", "") in table.column_names]
    report = (
        validate_tables("statistics", [statistics.path], gx_part, staging)
        if gx_part
        else ValidationReport("statistics")
    )
    delivered = _Delivered(table, statistics.min_cell, proof)
    for kind in (e["type"] for e in suite if e["type"] in RULES):
        bad = RULES[kind](delivered)
        report.outcomes.append(ExpectationOutcome(kind, "(table)", bad == 0, table.num_rows, bad))
    return report, proof
