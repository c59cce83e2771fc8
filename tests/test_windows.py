"""Windows around the index date (application contract): washout, the exclusion window and the
claims window, on hand-built persons at each edge."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kuhr_pipeline.application import load_spec
from kuhr_pipeline.cohort import select_cohort
from kuhr_pipeline.source import open_source
from tests import cohort_oracle
from tests.helpers import (
    SOURCE_ORDERS,
    in_order,
    person_id,
    pseudonym,
    read_staged,
    run_cli,
    staging_in,
    write_source,
    write_spec,
)

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


@pytest.fixture(params=SOURCE_ORDERS)
def staged(request: pytest.FixtureRequest, tmp_path: Path, spec_dir: Path) -> dict[int, list[str]]:
    """Each cohort person's delivered claim days, from the source in either order."""
    rows, row_group_size = in_order(request.param, ROWS)
    source = open_source(write_source(tmp_path / "source", rows, row_group_size))
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


# --- the pipeline against the reference written from the contract --------------------------------

CODES = ["R74", "R74", "R75", "P76", "A04"]
SYSTEMS = ["ICPC-2", "ICD-10"]
START = date(2018, 10, 1)  # the source spans 2018-10 … 2021-03 around the period 2019–2020


def _rows_strategy() -> st.SearchStrategy[list[dict]]:
    row = st.fixed_dictionaries(
        {
            "person": st.one_of(st.integers(1, 3), st.integers(1, 3), st.none()),
            # most days in the weeks around period.from, where windows and washout meet their edges
            "day": st.one_of(st.integers(85, 105), st.integers(85, 105), st.integers(0, 910)).map(
                lambda d: START + timedelta(days=d)
            ),
            "seconds": st.integers(0, 86_399),
            "codes": st.lists(st.sampled_from(CODES), min_size=1, max_size=2),  # R74 often: most claims enter
            "system": st.sampled_from(SYSTEMS),
            "status": st.sampled_from(["godkjent", "avvist"]),
            "age": st.one_of(st.integers(0, 90), st.none()),
        }
    )
    return st.lists(row, min_size=5, max_size=40)


def _spec_strategy() -> st.SearchStrategy[dict]:
    diagnoses = st.one_of(
        st.lists(st.sampled_from(["R74", "R7*", "P76"]), min_size=1, max_size=2, unique=True),
        st.dictionaries(
            st.sampled_from(SYSTEMS),
            st.lists(st.sampled_from(["R74", "R7*"]), min_size=1, max_size=2, unique=True),
            min_size=1,
        ),
    )
    window = st.tuples(st.integers(0, 6), st.integers(0, 6))
    return st.fixed_dictionaries(
        {
            "entry": diagnoses,
            "entry_status": st.one_of(st.none(), st.just(["godkjent"])),
            "min_entry": st.integers(1, 2),
            "washout": st.one_of(st.none(), st.integers(1, 10)),
            "age": st.one_of(st.just((0, 150)), st.just((10, 60))),
            "exclude": st.one_of(st.none(), st.just(["P76"]), st.just({"ICPC-2": ["P76"]})),
            "exclude_window": st.one_of(st.none(), window),
            "claims_window": st.one_of(st.none(), window),
        }
    )


def _as_spec_changes(spec: dict) -> dict:
    entry: dict = {"diagnoses": spec["entry"]}
    if spec["entry_status"]:
        entry["regning_status"] = spec["entry_status"]
    cohort: dict = {
        "entry": entry,
        "min_entry_claims": spec["min_entry"],
        "age": {"min": spec["age"][0], "max": spec["age"][1]},
    }
    if spec["washout"]:
        cohort["washout_days"] = spec["washout"]
    if spec["exclude"] is not None:
        cohort["exclude"] = {"diagnoses": spec["exclude"]}
        if spec["exclude_window"] is not None:
            cohort["exclude"]["window"] = dict(zip(("before", "after"), spec["exclude_window"], strict=True))
    changes = {
        "cohort": cohort,
        "period": {"from": "2019-01-01", "to": "2020-12-31"},
        "variables": ["pasient_pseudonym", "regning_id"],
    }
    if spec["claims_window"] is not None:
        changes["claims_window"] = dict(zip(("before", "after"), spec["claims_window"], strict=True))
    return changes


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=_rows_strategy(), spec=_spec_strategy())
def test_the_pipeline_agrees_with_the_reference(tmp_path_factory, spec_dir, rows, spec) -> None:
    for i, row in enumerate(rows):
        row["regning_id"] = f"B{i:05d}"
    anchors = [  # a claim in every year, so the source has no gap
        {
            "person": 99,
            "day": date(y, 6, 1),
            "seconds": 0,
            "codes": ["A04"],
            "system": "ICPC-2",
            "status": "godkjent",
            "age": 50,
            "regning_id": f"Z{y}",
        }
        for y in (2018, 2019, 2020, 2021)
    ]
    source_rows = [
        {
            "pasient_fnr": person_id(r["person"]) if r["person"] is not None else "",
            "when": datetime.combine(r["day"], datetime.min.time()) + timedelta(seconds=r["seconds"]),
            "diagnosekoder": r["codes"],
            "diagnosekodeverk": r["system"],
            "regning_status": r["status"],
            "pasient_alder": r["age"],
            "regning_id": r["regning_id"],
        }
        for r in rows + anchors
    ]
    folder = tmp_path_factory.mktemp("oracle")
    source = open_source(write_source(folder / "source", source_rows))
    loaded = load_spec(write_spec(spec_dir, _as_spec_changes(spec)))
    result = select_cohort(source, loaded.spec, MASTER, staging_in(folder / "stage"))
    table = read_staged(result.path)
    expected_persons, expected_claims = cohort_oracle.cohort(
        rows + anchors, {**spec, "from": date(2019, 1, 1), "to": date(2020, 12, 31)}
    )
    by_pseudonym = {pseudonym(MASTER, "TEST-0001", person_id(n)): n for n in [*range(1, 7), 99]}
    assert {by_pseudonym[p] for p in table.column("pasient_pseudonym").to_pylist()} <= expected_persons
    assert result.persons == len(expected_persons)
    assert set(table.column("regning_id").to_pylist()) == expected_claims
    by_year = select_cohort(source, loaded.spec, MASTER, staging_in(folder / "by-year"), per_year=True)
    assert read_staged(by_year.path).equals(table)  # each pass a year at a time (the fanned-out job): the same
    assert (by_year.attrition, by_year.profile) == (result.attrition, result.profile)


def test_the_recipient_reads_the_cohort_in_plain_words(spec_dir) -> None:
    from kuhr_pipeline.delivery.documents import codebook, readme

    spec = load_spec(
        write_spec(spec_dir, {**SPEC, "cohort.entry.diagnoses": {"ICPC-2": ["R74"], "ICD-10": ["J0*"]}})
    ).spec
    for text in (readme(spec, "D1", []), codebook(spec, [], None)):
        assert "an ICPC-2 diagnosis among R74 (on claims coded in ICPC-2)" in text
        assert "an ICD-10 diagnosis among J0* (on claims coded in ICD-10)" in text
        assert "New cases only: no entry claim in the 30 days before the index date" in text
        assert "dated from 10 days before to 5 days after the index date (inside or outside the period)" in text
        assert "dated from 3 days before to 7 days after the person's index date." in text
