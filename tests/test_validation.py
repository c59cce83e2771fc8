"""Each expectation family passes on a good table and fails on a table broken the way it guards against."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from kuhr_pipeline.application.model import ApplicationSpec
from kuhr_pipeline.disclosure.cube import Cube
from kuhr_pipeline.disclosure.statistics import StatisticsTable, certificates_table
from kuhr_pipeline.disclosure.suppression import suppress
from kuhr_pipeline.quality.statistics_rules import validate_statistics
from kuhr_pipeline.quality.suites import claims_suite
from kuhr_pipeline.quality.validate import validate_tables
from tests.helpers import BASE_SPEC, person_id, staging_in, write_sealed_parquet

COLUMNS = [
    ("pasient_pseudonym", "exact"),
    ("pasient_kjonn", "exact"),
    ("pasient_alder", "group5"),
    ("pasient_bostedskommune", "fylke"),
    ("behandlingstidspunkt", "month"),
    ("diagnosekoder", "exact"),
    ("avvisningsgrunn", "exact"),
    ("egenandel", "exact"),
]

GOOD = {
    "pasient_pseudonym": ["0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"],
    "pasient_kjonn": pa.array([1, 2], pa.int8()),
    "pasient_alder": ["00-04", "90+"],
    "pasient_bostedskommune": ["03", "46"],
    "behandlingstidspunkt": ["2019-01", "2020-12"],
    "diagnosekoder": [["R74", "A04"], []],
    "avvisningsgrunn": [None, "duplikatregning"],
    "egenandel": [0.0, 170.0],
}


def spec() -> ApplicationSpec:
    raw = {
        **BASE_SPEC,
        "period": {"from": date(2019, 1, 1), "to": date(2020, 12, 31)},
        "approval": {**BASE_SPEC["approval"], "decided": date(2026, 1, 1), "valid_until": date(2030, 12, 31)},
    }
    return ApplicationSpec.model_validate(raw)


def validate(tmp_path: Path, **changes: object):
    table = pa.table({**GOOD, **changes})
    path = tmp_path / "claims.parquet"
    write_sealed_parquet(path, table)
    return validate_tables("claims", [path], claims_suite(spec(), COLUMNS), staging_in(path.parent))


def failed(report) -> set[tuple[str, str]]:
    return {(o.type, o.column) for o in report.failed}


def test_good_table_passes(tmp_path: Path) -> None:
    report = validate(tmp_path)
    assert report.success, report.markdown()


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"pasient_pseudonym": ["0123456789abcdef0123456789abcdef", person_id(1)]},
            ("expect_column_values_to_match_regex", "pasient_pseudonym"),
        ),
        (
            {"pasient_pseudonym": ["0123456789abcdef0123456789abcdef", None]},
            ("expect_column_values_to_not_be_null", "pasient_pseudonym"),
        ),
        ({"pasient_kjonn": pa.array([1, 3], pa.int8())}, ("expect_column_values_to_be_in_set", "pasient_kjonn")),
        ({"pasient_alder": ["00-04", "91"]}, ("expect_column_values_to_be_in_set", "pasient_alder")),
        ({"pasient_bostedskommune": ["03", "0301"]}, ("expect_column_values_to_match_regex", "pasient_bostedskommune")),
        (
            {"behandlingstidspunkt": ["2019-01", "2021-01"]},
            ("expect_column_values_to_be_in_set", "behandlingstidspunkt"),
        ),
        ({"diagnosekoder": [["R74"], ["r74 "]]}, ("expect_column_values_to_match_regex", "diagnosekoder")),
        ({"egenandel": [0.0, -5.0]}, ("expect_column_values_to_be_between", "egenandel")),
        (
            {"avvisningsgrunn": [None, f"se regning for {person_id(2)}"]},
            ("expect_column_values_to_hold_no_fodselsnummer", "avvisningsgrunn"),
        ),
        (
            {"diagnosekoder": [["R74"], [person_id(3)]]},
            ("expect_column_values_to_hold_no_fodselsnummer", "diagnosekoder"),
        ),
    ],
    ids=[
        "pattern",
        "not-null",
        "code-list",
        "age-labels",
        "fylke",
        "period",
        "list-pattern",
        "range",
        "leak-free-text",
        "leak-list",
    ],
)
def test_broken_table_fails(tmp_path: Path, changes: dict, expected: tuple[str, str]) -> None:
    report = validate(tmp_path, **changes)
    assert expected in failed(report), report.markdown()
    assert person_id(1) not in str(report.to_json()) and person_id(2) not in str(report.to_json())


def test_column_order_is_checked(tmp_path: Path) -> None:
    table = pa.table({k: GOOD[k] for k in reversed(list(GOOD))})
    path = tmp_path / "claims.parquet"
    write_sealed_parquet(path, table)
    report = validate_tables("claims", [path], claims_suite(spec(), COLUMNS), staging_in(path.parent))
    assert ("expect_table_columns_to_match_ordered_list", "(table)") in failed(report)


def test_eleven_digits_that_are_not_an_id_pass(tmp_path: Path) -> None:
    report = validate(tmp_path, avvisningsgrunn=[None, "regning 12345678901 avvist"])
    assert report.success, report.markdown()


def _statistics(
    tmp_path: Path, rows: list[dict], persons: list[int], certificates: list[list[int]], min_cell: int = 5
) -> StatisticsTable:
    """A delivered table by hand, its cube's true values (claims = persons) and its hypercubes."""
    schema = pa.schema(
        [("ar", pa.string()), ("persons", pa.int64()), ("claims", pa.int64()), ("suppressed", pa.bool_())]
    )
    table = pa.Table.from_pylist(rows, schema=schema)
    cube = pa.table({"ar": table.column("ar"), "persons": pa.array(persons, pa.int64()), "claims": pa.array(persons)})
    return _staged(tmp_path, table, cube, [np.array(c) for c in certificates], min_cell)


def _staged(
    tmp_path: Path, table: pa.Table, cube: pa.Table, certificates: list[np.ndarray], min_cell: int = 5
) -> StatisticsTable:
    paths = [tmp_path / name for name in ("statistics.parquet", "cube.parquet", "certificates.parquet")]
    for path, content in zip(paths, [table, cube, certificates_table(certificates)], strict=True):
        write_sealed_parquet(path, content)
    return StatisticsTable(paths[0], table.num_rows, 0, 0, min_cell, ("ar",), paths[1], paths[2])


def _failed(statistics: StatisticsTable) -> set[str]:
    report, _ = validate_statistics(statistics, staging_in(statistics.cube_path.parent))  # type: ignore[union-attr]
    return {o.type for o in report.failed}


def test_statistics_suite_passes_on_suppressed_output(tmp_path: Path) -> None:
    cube = Cube(
        ["ar"],
        pa.table(
            {
                "ar": pa.array(["2019", "2020", None]),
                "persons": [3, 40, 43],
                "claims": [3, 40, 43],
                "sum_egenandel": [1.0, 2.0, 3.0],
                "sum_refusjon": [1.0, 2.0, 3.0],
            }
        ),
    )
    result = suppress(cube, ["persons", "claims"], 5)
    statistics = _staged(tmp_path, result.table, cube.table, result.certificates)
    report, proof = validate_statistics(statistics, staging_in(tmp_path))
    assert report.success and proof.holds and proof.suppressed == 2  # 2019, and with it 2020 (not the total)
    # the pair moves by δ ∈ [−3, 40]: each of the two cells lies in an interval 43 wide
    assert proof.figures()["smallest_interval_width_at_least"] == {"claims": 43.0}


def test_statistics_suite_fails_on_a_small_shown_cell(tmp_path: Path) -> None:
    rows = [
        {"ar": "2019", "persons": 3, "claims": 3, "suppressed": False},
        {"ar": None, "persons": 3, "claims": 3, "suppressed": False},
    ]
    assert _failed(_statistics(tmp_path, rows, [3, 3], [])) == {"expect_shown_rows_to_count_at_least_min_cell_persons"}


@pytest.mark.parametrize("certificates", [[], [[0, 1]]], ids=["no hypercube", "a hypercube with a shown corner"])
def test_statistics_suite_fails_on_a_recoverable_cell(tmp_path: Path, certificates: list[list[int]]) -> None:
    rows = [
        {"ar": "2019", "persons": None, "claims": None, "suppressed": True},
        {"ar": "2020", "persons": 40, "claims": 40, "suppressed": False},
        {"ar": None, "persons": 43, "claims": 43, "suppressed": False},
    ]
    failed = _failed(_statistics(tmp_path, rows, [3, 40, 43], certificates))
    assert failed == {"expect_no_suppressed_value_fixed_by_the_whole_table"}


def test_statistics_suite_fails_when_a_suppressed_row_shows_a_measure(tmp_path: Path) -> None:
    rows = [
        {"ar": "2019", "persons": None, "claims": 3, "suppressed": True},
        {"ar": "2020", "persons": None, "claims": None, "suppressed": True},
        {"ar": None, "persons": 43, "claims": 43, "suppressed": False},
    ]
    failed = _failed(_statistics(tmp_path, rows, [3, 40, 43], [[0, 1]]))
    assert failed == {"expect_suppressed_rows_to_have_null_measures"}


def test_statistics_suite_fails_when_one_single_person_can_solve_the_other(tmp_path: Path) -> None:
    """12 / 1 / 10 / 1 with only the two 1s suppressed: the whole table cannot pin them (they
    move together), but each of the two persons knows his own cell and subtracts."""
    rows = [
        {"ar": "a", "persons": 12, "claims": 12, "suppressed": False},
        {"ar": "b", "persons": None, "claims": None, "suppressed": True},
        {"ar": "c", "persons": 10, "claims": 10, "suppressed": False},
        {"ar": "d", "persons": None, "claims": None, "suppressed": True},
        {"ar": None, "persons": 24, "claims": 24, "suppressed": False},
    ]
    failed = _failed(_statistics(tmp_path, rows, [12, 1, 10, 1, 24], [[1, 3]], min_cell=2))
    assert failed == {"expect_no_suppressed_value_fixed_for_an_insider"}


def test_timestamps_inside_the_period(tmp_path: Path) -> None:
    columns = [("behandlingstidspunkt", "timestamp")]
    good = pa.table(
        {"behandlingstidspunkt": pa.array([datetime(2019, 1, 1), datetime(2020, 12, 31, 23, 59)], pa.timestamp("ms"))}
    )
    bad = pa.table({"behandlingstidspunkt": pa.array([datetime(2018, 12, 31, 23, 59)], pa.timestamp("ms"))})
    for table, ok in ((good, True), (bad, False)):
        path = tmp_path / "t.parquet"
        write_sealed_parquet(path, table)
        assert validate_tables("claims", [path], claims_suite(spec(), columns), staging_in(path.parent)).success is ok


def test_dates_inside_the_period(tmp_path: Path) -> None:
    columns = [("behandlingstidspunkt", "date")]
    for values, ok in (([date(2019, 1, 1), date(2020, 12, 31)], True), ([date(2018, 12, 31)], False)):
        path = tmp_path / "d.parquet"
        write_sealed_parquet(path, pa.table({"behandlingstidspunkt": pa.array(values, pa.date32())}))
        assert validate_tables("claims", [path], claims_suite(spec(), columns), staging_in(path.parent)).success is ok


def test_counts_add_up_over_row_groups(tmp_path: Path) -> None:
    """Columns are counted batch by batch: a bad value in several row groups is counted once per row."""
    good = pa.table(GOOD)
    bad = pa.table({**GOOD, "pasient_kjonn": pa.array([7, 1], pa.int8())})
    path = tmp_path / "claims.parquet"
    write_sealed_parquet(path, pa.concat_tables([good, bad, good, bad, bad]), row_group_size=2)
    report = validate_tables("claims", [path], claims_suite(spec(), COLUMNS), staging_in(path.parent))
    sex = [o for o in report.failed if o.column == "pasient_kjonn"]
    assert sex and sex[0].unexpected_count == 3 and sex[0].element_count == 10, report.markdown()


def test_string_and_code_list_counts_add_up_over_row_groups(tmp_path: Path) -> None:
    """Strings and lists of codes are counted on their Parquet dictionaries, which differ from
    row group to row group: every claim still counts once, nulls and empty lists included."""
    bad = pa.table(
        {
            **GOOD,
            "pasient_bostedskommune": ["X9", None],  # not a fylke; a missing one is allowed
            "diagnosekoder": [["R74", "XYZ", "XYZ"], ["A04", None]],  # not a code, twice; a missing code
        }
    )
    good = pa.table(GOOD)
    path = tmp_path / "claims.parquet"
    write_sealed_parquet(path, pa.concat_tables([bad, good, bad, good, bad]), row_group_size=3)
    report = validate_tables("claims", [path], claims_suite(spec(), COLUMNS), staging_in(path.parent))
    counts = {(o.type, o.column): (o.unexpected_count, o.element_count) for o in report.outcomes}
    assert counts[("expect_column_values_to_match_regex", "pasient_bostedskommune")] == (3, 10), report.markdown()
    assert counts[("expect_column_values_to_match_regex", "diagnosekoder")] == (6, 19), report.markdown()
    assert counts[("expect_column_values_to_not_be_null", "diagnosekoder")] == (3, 19), report.markdown()


def test_the_gx_process_ends_with_the_process_that_started_it() -> None:
    """GX runs in a process of its own; it never outlives the process that started it, whether
    that one exits or is killed."""
    import os
    import signal
    import subprocess
    import sys
    import time

    script = (
        "import sys, time\n"
        "from kuhr_pipeline.quality import gx_process\n"
        "gx_process.start()\n"
        "print(gx_process._worker._process.pid, flush=True)\n"
        "time.sleep(60) if sys.argv[1] == 'wait' else None\n"
    )

    def gone(pid: int) -> bool:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except FileNotFoundError:
                return True
            if state == "Z":
                return True
            time.sleep(0.1)
        return False

    exits = subprocess.run([sys.executable, "-c", script, "exit"], capture_output=True, text=True, check=True)
    assert gone(int(exits.stdout))

    killed = subprocess.Popen([sys.executable, "-c", script, "wait"], stdout=subprocess.PIPE, text=True)
    assert killed.stdout is not None
    worker = int(killed.stdout.readline())
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    assert gone(worker)


def test_a_dead_gx_process_is_replaced(tmp_path: Path) -> None:
    """If the GX process dies (killed, out of memory), the next validation starts a new one."""
    import os
    import signal

    from kuhr_pipeline.quality import gx_process

    gx_process.start()
    assert gx_process._worker is not None
    os.kill(gx_process._worker._process.pid, signal.SIGKILL)
    gx_process._worker._process.wait()
    assert validate(tmp_path).success


def test_gx_replies_stay_in_step_after_an_error_or_an_early_stop() -> None:
    """Two requests are in flight at a time; a failed request or a caller that stops early must
    not leave a stale reply for the next validation to read."""
    import numpy as np
    import pandas as pd

    from kuhr_pipeline.quality import gx_process

    def request(values: list[int], low: int) -> gx_process.Request:
        frame = pd.DataFrame({"x": pd.array(values, dtype="int64[pyarrow]")})
        between = {"type": "expect_column_values_to_be_between", "kwargs": {"column": "x", "min_value": low}}
        return frame, np.ones(len(values), dtype=np.int64), [between]

    frame, _, between = request([1], 0)
    broken = (frame, None, between)  # no row counts: the GX process fails this request
    results = gx_process.run_all([request([1, 2], 0), broken, request([5], 9)])
    assert next(results)[0]["success"] is True
    with pytest.raises(RuntimeError, match="Great Expectations failed"):
        next(results)

    stopped = gx_process.run_all([request([1], 5), request([2], 0), request([3], 0)])
    assert next(stopped)[0]["success"] is False
    stopped.close()

    again = list(gx_process.run_all([request([7], 0), request([7], 8)]))
    assert [r[0]["success"] for r in again] == [True, False]


def test_modules_the_gx_process_puts_off_still_work_when_used() -> None:
    """The GX process puts off importing SciPy's statistics (used by one expectation we never
    ask for); should anything use them, they load then and behave as the real module."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from kuhr_pipeline.quality.gx_process import _defer\n"
        "_defer('scipy.stats')\n"
        "assert 'scipy.stats._stats_py' not in sys.modules\n"
        "from scipy import stats\n"
        "import scipy.stats as again\n"
        "assert 'scipy.stats._stats_py' not in sys.modules\n"
        "same = sys.modules['scipy.stats'].entropy is stats.entropy\n"
        "print(round(stats.entropy([0.5, 0.5], [0.25, 0.75]), 6), again.norm.cdf(0), same)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["0.143841", "0.5", "True"]
