"""Geography over the municipal reforms: the shipped kommune lists, the one mapping function, and
`geography: {map: Y}` in the cohort, the extract, the cube, the expectations, the codebook and
`check` (application-spec.md, "Geography over the municipal reforms")."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from kuhr_pipeline.application import load_spec
from kuhr_pipeline.catalogue.kommuner import UNKNOWN_KOMMUNE, KommuneLists, fold_bydeler, load_kommune_lists
from kuhr_pipeline.cohort import select_cohort
from kuhr_pipeline.delivery.documents import codebook
from kuhr_pipeline.disclosure.cube import build_cube
from kuhr_pipeline.disclosure.statistics import build_statistics
from kuhr_pipeline.extract.build import build_extract
from kuhr_pipeline.extract.generalise import generalise
from kuhr_pipeline.quality.statistics_rules import validate_statistics
from kuhr_pipeline.quality.suites import claims_suite, map_expectations
from kuhr_pipeline.source import open_source
from kuhr_pipeline.synth.kommuner import KOMMUNER, numbers_in
from tests.helpers import person_id, run_cli, staging_in, write_source, write_spec

MASTER = bytes(range(32))
LISTS = load_kommune_lists()  # for the spec and pipeline tests below, which read the shipped lists


@pytest.fixture(autouse=True)
def lists(monkeypatch: pytest.MonkeyPatch) -> KommuneLists:
    """The lists read afresh for each test (nothing remembered from another test's answers)."""
    fresh = load_kommune_lists()
    monkeypatch.setitem(globals(), "LISTS", fresh)
    return fresh


def _covering(code: str, year: int, map_year: int) -> str | None:
    return LISTS.covering(code, year, map_year)


# --- the lists: facts of SSB's classification 131 -----------------------------------------------


@pytest.mark.parametrize(
    ("year", "kommuner"), [(2006, 431), (2008, 430), (2013, 428), (2017, 426), (2018, 422), (2020, 356), (2024, 357)]
)
def test_the_lists_hold_every_kommune_of_each_year(year: int, kommuner: int) -> None:
    assert len(LISTS.kommuner_in(year)) == kommuner


def test_the_lists_cover_2006_to_2025_and_later_years_keep_the_last_list() -> None:
    assert (LISTS.first_year, LISTS.last_year) == (2006, 2025)
    assert LISTS.kommuner_in(2025) == LISTS.kommuner_in(2024) == LISTS.kommuner_in(2027)
    assert len(LISTS.fylker_in(2019)) == 18 and len(LISTS.fylker_in(2020)) == 11 and len(LISTS.fylker_in(2024)) == 15
    assert "9999" not in LISTS.kommuner_in(2024)  # "Uoppgitt" is no kommune
    assert (LISTS.names["0219"], LISTS.names["1508"]) == ("Bærum", "Ålesund")  # read as UTF-8


def test_baerum_is_one_kommune_and_one_fylke_in_every_year() -> None:
    """The contract's example: 0219 until 2019, 3024 in 2020–2023, 3201 from 2024."""
    for code, year in (("0219", 2019), ("3024", 2021), ("3201", 2024)):
        assert _covering(code, year, 2024) == "3201"
        assert _covering(code, year, 2020) == "3024"
    fylker = generalise(pa.array(["0219", "3024", "3201"]), "fylke", pa.array([2019, 2021, 2024]), 2024)
    assert fylker.to_pylist() == ["32", "32", "32"]
    assert generalise(pa.array(["0219", "3024", "3201"]), "fylke").to_pylist() == ["02", "30", "32"]  # as recorded


def test_merges_map_many_to_one_and_renumberings_one_to_one() -> None:
    assert _covering("1601", 2017, 2020) == _covering("1662", 2017, 2020) == "5001"  # Trondheim + Klæbu
    assert _covering("1601", 2017, 2018) == "5001"  # Trondheim renumbered in the Trøndelag merger
    assert _covering("1662", 2017, 2019) == "5030"  # Klæbu was renumbered in 2018, merged in 2020
    assert _covering("5030", 2019, 2020) == "5001"
    assert _covering("1201", 2006, 2024) == "4601"  # Bergen
    assert _covering("0301", 2006, 2024) == "0301"  # Oslo never changed


def test_a_divided_kommune_goes_to_its_largest_part_and_a_restored_one_to_itself() -> None:
    assert _covering("1507", 2022, 2024) == "1508"  # Ålesund 2020–2023: Haram split off in 2024
    assert _covering("1534", 2019, 2024) == "1580"  # Haram before 2020 is Haram again
    assert _covering("1504", 2019, 2024) == "1508"
    assert _covering("5012", 2019, 2020) == "5059"  # Snillfjord → Orkland
    assert _covering("0720", 2016, 2017) == "0710"  # Stokke → Sandefjord
    divided = {(d.year, d.code): (d.largest, d.others) for d in LISTS.divisions()}
    assert divided == {
        (2017, "0720"): ("0710", ("0704",)),
        (2020, "1850"): ("1875", ("1806",)),
        (2020, "5012"): ("5059", ("5055", "5056")),
        (2024, "1507"): ("1508", ("1580",)),
    }


def test_backwards_a_number_follows_its_one_predecessor_and_a_merger_places_nothing() -> None:
    assert _covering("3201", 2024, 2019) == "0219"
    assert _covering("1580", 2024, 2023) == "1507"
    assert _covering("5001", 2020, 2019) is None  # Trondheim 2020 was Trondheim and Klæbu in 2019
    assert LISTS.mergers_after(2019, 2019) == []
    assert (2020, "5001") in LISTS.mergers_after(2019, 2020)
    assert LISTS.mergers_after(2020, 2025) == []  # 2024 divided and renumbered, merged nothing


def test_a_number_that_is_no_kommune_in_its_year_is_unknown_and_bydeler_fold_first() -> None:
    codes = pa.array(["3201", "0312", "9999", "12ab", None, "0219"])
    years = pa.array([2019, 2019, 2019, 2019, 2019, 2020])
    assert LISTS.harmonise(codes, years, 2024).to_pylist() == [
        UNKNOWN_KOMMUNE,  # 3201 was no kommune in 2019
        "0301",  # an Oslo bydel is Oslo
        UNKNOWN_KOMMUNE,
        UNKNOWN_KOMMUNE,
        None,  # a missing number stays missing
        UNKNOWN_KOMMUNE,  # 0219 was no kommune any more in 2020
    ]
    assert generalise(codes, "fylke", years, 2024).to_pylist()[0] == UNKNOWN_KOMMUNE


def test_nulls_and_a_single_number_are_mapped_in_place() -> None:
    assert LISTS.harmonise(pa.array(["0219", None]), pa.array([2019, 2019]), 2024).to_pylist() == ["3201", None]
    assert LISTS.harmonise(pa.array([None, "0219"]), pa.array([None, 2019]), 2024).to_pylist() == [None, "3201"]
    assert LISTS.harmonise(pa.array([None, None], pa.string()), pa.array([2019, 2020]), 2024).type == pa.string()
    assert LISTS.harmonise(
        pa.chunked_array([["0219"], ["3024"]]), pa.chunked_array([[2019], [2021]]), 2024
    ).to_pylist() == ["3201", "3201"]
    assert LISTS.harmonise(pa.array([], pa.string()), pa.array([], pa.int16()), 2024).to_pylist() == []
    remembered = LISTS.answers  # one answer per number and year of a batch, none for a null
    assert remembered[("0219", 2019, 2024)] == remembered[("3024", 2021, 2024)] == "3201"
    assert remembered[("0219", 2021, 2024)] == UNKNOWN_KOMMUNE and all(code for code, _, _ in remembered)


def test_bydeler_fold_and_other_text_stays_as_recorded() -> None:
    recorded = pa.array(["0312", "0335", "0336", "1161", "1201", "12ab", None, "0311"])
    assert fold_bydeler(recorded).to_pylist() == ["0301", "0301", "0336", "1103", "1201", "12ab", None, "0311"]
    assert generalise(recorded, "kommune").to_pylist() == fold_bydeler(recorded).to_pylist()


def test_backwards_over_two_changes_and_the_years_a_number_was_none() -> None:
    assert _covering("5030", 2019, 2017) == "1662"  # Klæbu: 5030 in 2018–2019, 1662 before
    assert LISTS.years_not_a_kommune("3024", 2020, 2023) == []
    assert LISTS.years_not_a_kommune("3024", 2019, 2024) == [2019, 2024]
    for (year, old), news in LISTS.successors.items():  # a number ends the year before its change
        assert LISTS.years[old][1] == year - 1 or news == (old,), (year, old)


def test_the_vectorised_mapping_agrees_with_the_rule_row_by_row() -> None:
    codes = [c for c, (first, last) in sorted(LISTS.years.items())]
    rows = [(code, year) for code in codes for year in range(2006, 2026, 3)]
    got = LISTS.harmonise(pa.array([c for c, _ in rows]), pa.array([y for _, y in rows], pa.int16()), 2024)
    assert got.to_pylist() == [_covering(c, y, 2024) or UNKNOWN_KOMMUNE for c, y in rows]


def test_the_synthetic_generator_renumbers_as_the_lists_say() -> None:
    for year in range(2006, 2026):
        assert all(LISTS.is_kommune(number, year) for number in numbers_in(year)), year
    for name, _, history in KOMMUNER:
        for i, (first, code) in enumerate(history):
            year = max(first, 2006)
            for later_first, later_code in history[i:]:
                assert _covering(code, year, max(later_first, 2006)) == later_code, name


# --- the spec: refusals and advisories -----------------------------------------------------------


def _check(spec_dir: Path, capsys: pytest.CaptureFixture[str], changes: dict) -> tuple[int, str, str]:
    return run_cli(["check", write_spec(spec_dir, changes)], capsys)


@pytest.mark.parametrize("year", [2005, 2026])
def test_a_map_outside_the_shipped_lists_is_refused(spec_dir: Path, capsys, year: int) -> None:
    code, _, err = _check(spec_dir, capsys, {"geography": {"map": year}})
    assert code == 2 and "geography.map" in err and "outside the shipped kommune lists (2006–2025)" in err


def test_the_edges_of_the_lists_are_maps(spec_dir: Path, capsys) -> None:
    for year in (2025, "as_recorded"):
        code, _, err = _check(
            spec_dir, capsys, {"geography": {"map": year}, "period": {"from": "2024-01-01", "to": "2024-12-31"}}
        )
        assert code == 0, err


def test_a_map_before_a_merger_in_the_period_is_refused(spec_dir: Path, capsys) -> None:
    code, _, err = _check(spec_dir, capsys, {"geography": {"map": 2019}})  # the base period is 2019–2020
    assert code == 2 and "geography.map" in err and "choose a map year of 2020 or later" in err
    code, _, err = _check(spec_dir, capsys, {"geography": {"map": 2020}})
    assert code == 0, err
    code, _, err = _check(
        spec_dir, capsys, {"geography": {"map": 2019}, "period": {"from": "2018-01-01", "to": "2019-12-31"}}
    )
    assert code == 0, err  # the Trøndelag merger of 2018 lies before the map: forwards is always sound


def test_check_advises_on_numbers_and_fylker_that_change_within_the_period(spec_dir: Path, capsys) -> None:
    period = {"from": "2019-01-01", "to": "2024-12-31"}
    fylke = [*["pasient_pseudonym"], {"name": "pasient_bostedskommune", "as": "fylke"}]
    code, out, _ = _check(
        spec_dir, capsys, {"period": period, "cohort.bostedskommuner": ["3201", "03*"], "variables": fylke}
    )
    assert code == 0
    assert "cohort.bostedskommuner[0]: '3201' was no kommune in 2019–2023" in out
    assert "bostedskommuner[1]" not in out  # a pattern, not a number
    assert "pasient_bostedskommune as fylke over 2019–2024: the fylke numbers changed in 2020, 2024" in out
    code, out, _ = _check(
        spec_dir,
        capsys,
        {"period": period, "cohort.bostedskommuner": ["3201"], "variables": fylke, "geography": {"map": 2024}},
    )
    assert code == 0 and "bostedskommuner" not in out and "fylke over" not in out
    code, out, _ = _check(
        spec_dir, capsys, {"period": period, "cohort.bostedskommuner": ["0219"], "geography": {"map": 2024}}
    )
    assert "'0219' is no kommune on the map of 2024; it matches no one" in out
    code, out, _ = _check(spec_dir, capsys, {"period": {"from": "2020-01-01", "to": "2023-12-31"}, "variables": fylke})
    assert "fylke over" not in out  # no reform inside 2020–2023


def test_a_spec_without_geography_keeps_its_hash(spec_dir: Path) -> None:
    plain = load_spec(write_spec(spec_dir)).spec
    assert "geography" not in plain.model_dump(by_alias=True)
    assert plain.map_year is None and plain.plan.map_year is None


# --- the pipeline: cohort, extract, cube, expectations, codebook ---------------------------------

# Three Bærum residents recorded under Bærum's three numbers, one Oslo resident, one unknown number.
ROWS = [
    {"pasient_fnr": person_id(1), "when": "2019-03-01T10:00:00", "pasient_bostedskommune": "0219"},
    {"pasient_fnr": person_id(2), "when": "2021-03-01T10:00:00", "pasient_bostedskommune": "3024"},
    {"pasient_fnr": person_id(3), "when": "2024-03-01T10:00:00", "pasient_bostedskommune": "3201"},
    {"pasient_fnr": person_id(4), "when": "2021-03-01T10:00:00", "pasient_bostedskommune": "0301"},
    {"pasient_fnr": person_id(5), "when": "2022-03-01T10:00:00", "pasient_bostedskommune": "0219"},
]
FILLERS = [  # no entry code: the source has every year, as a source must
    {
        "pasient_fnr": person_id(6),
        "when": f"{year}-03-01T10:00:00",
        "pasient_bostedskommune": "0301",
        "diagnosekoder": ["L03"],
    }
    for year in (2020, 2023)
]
BAERUM_SPEC = {
    "period": {"from": "2019-01-01", "to": "2024-12-31"},
    "cohort": {"entry": {"diagnoses": ["A04"]}, "bostedskommuner": ["3201"]},
    "variables": ["pasient_pseudonym", {"name": "pasient_bostedskommune", "as": "fylke"}],
}


@pytest.fixture
def source(tmp_path: Path):
    rows = [
        {"diagnosekoder": ["A04"], **row, "behandler_praksiskommune": row["pasient_bostedskommune"]}
        for row in ROWS + FILLERS
    ]
    return open_source(write_source(tmp_path / "source", rows))


def _delivered(source, spec, tmp_path: Path, name: str) -> pa.Table:
    claims = select_cohort(source, spec, MASTER, staging_in(tmp_path / name))
    files = build_extract(spec, claims.path, staging_in(tmp_path / name), staging_in(tmp_path / name).sub("extract"))
    return pa.concat_tables(staging_in(path.parent).read_parquet(path) for _, path in files.tables())


def test_the_cohort_reads_kommune_patterns_on_the_map(source, spec_dir: Path, tmp_path: Path) -> None:
    on_map = load_spec(write_spec(spec_dir, {**BAERUM_SPEC, "geography": {"map": 2024}})).spec
    as_recorded = load_spec(write_spec(spec_dir, BAERUM_SPEC, name="plain.yaml")).spec
    assert _delivered(source, on_map, tmp_path, "map").num_rows == 3  # Bærum in 2019, 2021 and 2024
    assert _delivered(source, as_recorded, tmp_path, "plain").num_rows == 1  # only 2024's number


def test_the_extract_delivers_one_fylke_per_place_and_unknown_numbers_as_ukjent(
    source, spec_dir: Path, tmp_path: Path
) -> None:
    spec = load_spec(
        write_spec(spec_dir, {**BAERUM_SPEC, "cohort": {"entry": {"diagnoses": ["A04"]}}, "geography": {"map": 2024}})
    ).spec
    table = _delivered(source, spec, tmp_path, "all")
    assert sorted(table.column("pasient_bostedskommune").to_pylist()) == ["03", "32", "32", "32", UNKNOWN_KOMMUNE]
    suite = claims_suite(spec, spec.plan.pairs)
    in_set = [e for e in suite if e["type"] == "expect_column_values_to_be_in_set"]
    assert in_set[0]["kwargs"]["value_set"] == [*sorted(LISTS.fylker_in(2024)), UNKNOWN_KOMMUNE]
    counted = [e for e in suite if e["type"] == "expect_column_values_to_not_be_in_set"]
    assert counted == [
        {
            "type": "expect_column_values_to_not_be_in_set",
            "kwargs": {"column": "pasient_bostedskommune", "value_set": [UNKNOWN_KOMMUNE], "mostly": 0.0},
        }
    ]


def test_the_cube_groups_by_the_mapped_kommune(source, spec_dir: Path, tmp_path: Path) -> None:
    statistics = {
        "period": BAERUM_SPEC["period"],
        "cohort": {"entry": {"diagnoses": ["A04"]}},
        "data_level": "statistics",
        "statistics": {"group_by": [{"name": "behandler_praksiskommune", "as": "kommune"}], "measures": ["claims"]},
    }
    spec = load_spec(write_spec(spec_dir, statistics, remove=["variables"])).spec
    claims = select_cohort(source, spec, MASTER, staging_in(tmp_path / "s"))
    group_by = [("behandler_praksiskommune", "kommune")]
    for map_year, cells in (
        (2024, {"3201": 3, "0301": 1, UNKNOWN_KOMMUNE: 1}),
        (None, {"0219": 2, "3024": 1, "3201": 1, "0301": 1}),
    ):
        cube = build_cube(staging_in(tmp_path / "s"), claims.path, group_by, map_year=map_year).table
        leaves = cube.filter(pc.is_valid(cube.column("behandler_praksiskommune")))
        assert (
            dict(
                zip(
                    leaves.column("behandler_praksiskommune").to_pylist(),
                    leaves.column("claims").to_pylist(),
                    strict=True,
                )
            )
            == cells
        )


def test_a_statistics_table_is_checked_against_the_map(source, spec_dir: Path, tmp_path: Path) -> None:
    statistics = {
        "period": BAERUM_SPEC["period"],
        "cohort": {"entry": {"diagnoses": ["A04"]}},
        "data_level": "statistics",
        "statistics": {
            "group_by": [{"name": "pasient_bostedskommune", "as": "fylke"}],
            "measures": ["claims"],
            "min_cell": 3,
        },
        "geography": {"map": 2024},
    }
    spec = load_spec(write_spec(spec_dir, statistics, remove=["variables"])).spec
    staging = staging_in(tmp_path / "s")
    claims = select_cohort(source, spec, MASTER, staging)
    table = build_statistics(spec, claims.path, staging, staging.sub("statistics"))
    report, _ = validate_statistics(table, staging, map_expectations(spec, spec.plan.pairs))
    outcomes = {o.type: o for o in report.outcomes if o.column == "pasient_bostedskommune"}
    assert outcomes["expect_column_values_to_be_in_set"].success
    assert outcomes["expect_column_values_to_not_be_in_set"].success  # "ukjent" is counted, not failed
    assert outcomes["expect_column_values_to_not_be_in_set"].unexpected_count == 1  # its one cell


def test_the_codebook_names_the_map_and_every_divided_kommune(spec_dir: Path) -> None:
    spec = load_spec(write_spec(spec_dir, {**BAERUM_SPEC, "geography": {"map": 2024}})).spec
    text = codebook(spec, spec.plan.pairs, None)
    assert "as on the map of 1 January 2024" in text
    assert "| 2024 | 1507 Ålesund | 1508 Ålesund | 1580 Haram |" in text
    assert "| 2020 | 5012 Snillfjord | 5059 Orkland | 5055 Heim, 5056 Hitra |" in text
    assert "1534 Haram → 1580 Haram" in text
    assert "(numbers of the map of 2024, in every year)" in text
    early = load_spec(
        write_spec(
            spec_dir,
            {**BAERUM_SPEC, "period": {"from": "2019-01-01", "to": "2019-12-31"}, "geography": {"map": 2019}},
            name="early.yaml",
        )
    ).spec
    assert "1507 Ålesund" not in codebook(early, early.plan.pairs, None)  # a division after the map plays no part


def test_the_issues_numbers_on_the_maps_of_2019_and_2024() -> None:
    assert [_covering(c, y, 2019) for c, y in (("0219", 2019),)] == ["0219"]
    assert generalise(pa.array(["0219"]), "fylke", pa.array([2019]), 2019).to_pylist() == ["02"]
    assert (_covering("0101", 2019, 2020), _covering("0101", 2019, 2024), _covering("3001", 2021, 2024)) == (
        "3001",
        "3101",
        "3101",
    )  # Halden
    assert _covering("1601", 2017, 2024) == "5001"
    bergen_bydel = generalise(pa.array(["1205", "1205"]), "kommune", pa.array([2019, 2019]), 2024).to_pylist()
    assert bergen_bydel == ["4601", "4601"]  # a bydel of Bergen folds into Bergen, then onto the map
    assert generalise(pa.array(["1205"]), "kommune", pa.array([2019]), 2019).to_pylist() == ["1201"]


def test_mapping_twice_is_mapping_once_and_per_year_is_the_same_as_whole() -> None:
    rng = np.random.default_rng(3)
    codes = sorted(LISTS.years)
    picked = pa.array([codes[i] for i in rng.integers(0, len(codes), 2000)])
    years = pa.array(rng.integers(2006, 2026, 2000), pa.int16())
    once = LISTS.harmonise(picked, years, 2024)
    again = LISTS.harmonise(once, pa.array([2024] * len(once), pa.int16()), 2024)
    known = pc.not_equal(once, UNKNOWN_KOMMUNE)
    assert again.filter(known).to_pylist() == once.filter(known).to_pylist()  # a 2024 kommune is itself on 2024
    per_year = {
        int(y): LISTS.harmonise(picked.filter(pc.equal(years, y)), years.filter(pc.equal(years, y)), 2024).to_pylist()
        for y in pc.unique(years).to_pylist()
    }
    whole = {int(y): once.filter(pc.equal(years, y)).to_pylist() for y in pc.unique(years).to_pylist()}
    assert per_year == whole


def test_a_cube_by_year_and_fylke_on_the_map_has_the_same_fylker_in_every_year(spec_dir: Path, tmp_path: Path) -> None:
    """Over 2017–2024 no fylke appears or vanishes at a reform, and the suppression proof holds."""
    from kuhr_pipeline.synth import generate_source

    source = open_source(generate_source(tmp_path / "synth", persons=1500, from_year=2017, to_year=2024, seed=4).path)
    statistics = {
        "period": {"from": "2017-01-01", "to": "2024-12-31"},
        "cohort": {"entry": {"praksistyper": ["FALE"]}},
        "data_level": "statistics",
        "statistics": {
            "group_by": ["ar", {"name": "pasient_bostedskommune", "as": "fylke"}],
            "measures": ["persons", "claims"],
            "min_cell": 3,
        },
        "geography": {"map": 2024},
    }
    spec = load_spec(write_spec(spec_dir, statistics, remove=["variables"])).spec
    staging = staging_in(tmp_path / "s")
    table = build_statistics(
        spec, select_cohort(source, spec, MASTER, staging).path, staging, staging.sub("statistics")
    )
    cells = staging.read_parquet(table.path).to_pylist()
    by_year: dict[int, set[str]] = {}
    for cell in cells:
        if cell["ar"] is not None and cell["pasient_bostedskommune"] is not None:
            by_year.setdefault(int(cell["ar"]), set()).add(cell["pasient_bostedskommune"])
    assert sorted(by_year) == list(range(2017, 2025))
    assert all(fylker == by_year[2024] for fylker in by_year.values()), by_year
    assert by_year[2024] <= LISTS.fylker_in(2024) | {UNKNOWN_KOMMUNE}
    report, proof = validate_statistics(table, staging, map_expectations(spec, spec.plan.pairs))
    assert report.success and proof.holds
