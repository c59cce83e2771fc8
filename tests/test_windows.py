"""Windows around the index date (application contract): washout, the exclusion window and the
claims window, on hand-built persons at each edge."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from kuhr_pipeline.cohort import select_cohort
from kuhr_pipeline.source import open_source
from kuhr_pipeline.spec import load_spec
from tests.helpers import person_id, pseudonym, read_staged, run_cli, staging_in, write_source, write_spec

MASTER = bytes(range(32))


def claim(n: int, day: str, codes: list[str] | None = None, **extra: object) -> dict:
    return {"pasient_fnr": person_id(n), "when": f"{day}T10:00:00", "diagnosekoder": codes or ["R74"], **extra}


ROWS = [
    # washout 30 days: an entry claim on day −30 drops the person, on day −31 does not
    claim(1, "2019-01-10"),
    claim(1, "2018-12-11"),
    claim(2, "2019-01-10"),
    claim(2, "2018-12-10"),
    claim(3, "2019-01-10"),
    claim(3, "2018-12-20", ["A04"]),  # a prior claim that is no entry claim
    claim(4, "2019-01-10"),
    claim(4, "2018-12-20", regning_status="avvist"),  # rejected: no entry claim when the entry asks godkjent
    # exclusion window 10 days before, 5 after: day −10 and +5 exclude, −11 and +6 do not
    claim(6, "2019-06-15"),
    claim(6, "2019-06-05", ["P76"]),
    claim(7, "2019-06-15"),
    claim(7, "2019-06-20", ["P76"]),
    claim(8, "2019-06-15"),
    claim(8, "2019-06-04", ["P76"]),
    claim(9, "2019-06-15"),
    claim(9, "2019-06-21", ["P76"]),
    claim(10, "2019-01-05"),
    claim(10, "2018-12-28", ["P76"]),  # before the period: read and applied
    claim(11, "2020-12-29"),
    claim(11, "2021-01-02", ["P76"]),  # after the period: read and applied
    # claims window 3 days before, 7 after: −3 and +7 delivered, −4 and +8 not; never outside the period
    claim(12, "2019-03-10"),
    claim(12, "2019-03-07", ["A04"]),
    claim(12, "2019-03-06", ["A04"]),
    claim(12, "2019-03-17", ["A04"]),
    claim(12, "2019-03-18", ["A04"]),
    claim(13, "2019-01-02"),
    claim(13, "2018-12-31", ["A04"]),
    claim(13, "2019-01-01", ["A04"]),
]
SPEC = {
    "period": {"from": "2019-01-01", "to": "2020-12-31"},
    "cohort": {
        "entry": {"diagnoses": ["R74"], "regning_status": ["godkjent"]},
        "washout_days": 30,
        "exclude": {"diagnoses": ["P76"], "window": {"before": 10, "after": 5}},
    },
    "claims_window": {"before": 3, "after": 7},
}


@pytest.fixture
def staged(tmp_path: Path, spec_dir: Path) -> dict[int, list[str]]:
    """Each cohort person's delivered claim days."""
    source = open_source(write_source(tmp_path / "source", ROWS))
    spec = load_spec(write_spec(spec_dir, SPEC)).spec
    result = select_cohort(source, spec, MASTER, staging_in(tmp_path / "stage"))
    table = read_staged(result.path)
    by_pseudonym = {pseudonym(MASTER, "TEST-0001", person_id(n)): n for n in range(1, 14)}
    days: dict[int, list[str]] = {}
    for row in table.select(["pasient_pseudonym", "behandlingstidspunkt"]).to_pylist():
        when: datetime = row["behandlingstidspunkt"]
        days.setdefault(by_pseudonym[row["pasient_pseudonym"]], []).append(when.date().isoformat())
    steps = dict(zip(*(result.attrition.table().column(c).to_pylist() for c in ("step", "persons")), strict=True))
    days[0] = [steps["after washout"]]
    return {n: sorted(d) for n, d in days.items()}


def test_washout_drops_a_person_with_an_entry_claim_within_n_days_before_the_index(staged) -> None:
    assert 1 not in staged
    assert {2, 3, 4} <= set(staged)


def test_the_exclusion_window_is_inclusive_and_reaches_outside_the_period(staged) -> None:
    assert not {6, 7, 10, 11} & set(staged)
    assert {8, 9} <= set(staged)


def test_the_claims_window_keeps_claims_from_minus_b_to_plus_a_inside_the_period(staged) -> None:
    assert staged[12] == ["2019-03-07", "2019-03-10", "2019-03-17"]
    assert staged[13] == ["2019-01-01", "2019-01-02"]


def test_after_washout_is_an_attrition_step(staged) -> None:
    assert set(staged) - {0} == {2, 3, 4, 8, 9, 12, 13}
    # 12 persons with an entry claim (1–4, 6–13); person 1 washed out: "after washout" counts 11
    assert staged[0] == ["11"]


@pytest.mark.parametrize(
    "changes, field, words",
    [
        ({"cohort.washout_days": 0}, "cohort.washout_days", "greater than or equal to 1"),
        ({"cohort.washout_days": 3651}, "cohort.washout_days", "less than or equal to 3650"),
        ({"cohort.exclude": {"diagnoses": ["P76"], "window": {"before": -1}}}, "cohort.exclude.window.before", ">= 0"),
        ({"claims_window": {"after": 4000}}, "claims_window.after", "less than or equal to 3650"),
        (
            {"period": {"from": "2006-06-01", "to": "2007-12-31"}, "cohort.washout_days": 365},
            "cohort.washout_days",
            "before KUHR's first data",
        ),
        (
            {
                "period": {"from": "2006-03-01", "to": "2007-12-31"},
                "cohort.exclude": {"diagnoses": ["P76"], "window": {"before": 90}},
            },
            "cohort.exclude.window.before",
            "before KUHR's first data",
        ),
    ],
)
def test_window_refusals(spec_dir, capsys, changes, field, words) -> None:
    code, out, err = run_cli(["check", write_spec(spec_dir, changes)], capsys)
    assert code == 2 and field in err, err
    assert words.replace(">= 0", "greater than or equal to 0") in err, err


def test_a_claims_window_in_a_statistics_application_is_refused(spec_dir, capsys) -> None:
    changes = {
        "data_level": "statistics",
        "statistics": {"group_by": ["ar"], "measures": ["persons"]},
        "claims_window": {"before": 1},
    }
    code, out, err = run_cli(["check", write_spec(spec_dir, changes, remove=["variables"])], capsys)
    assert code == 2 and "claims_window: is for person-level deliveries only" in err, err
