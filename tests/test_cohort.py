"""The cohort, person by person, for every rule of the spec contract's semantics."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from kuhr_pipeline.application import load_spec
from kuhr_pipeline.cohort import find_cohort, select_cohort
from kuhr_pipeline.cohort.criteria import codes_match
from kuhr_pipeline.errors import SourceError
from kuhr_pipeline.identity.fodselsnummer import IdReason
from kuhr_pipeline.source import open_source
from tests.helpers import (
    SOURCE_ORDERS,
    fnr,
    in_order,
    person_id,
    pseudonym,
    read_staged,
    staging_in,
    write_source,
    write_spec,
)

MASTER = bytes(range(32))
DOMAIN = "TEST-0001"

P = {n: person_id(n) for n in range(1, 20)}
P[16] = person_id(16, d_number=True)
P[17] = person_id(17, h_number=True)


def _synthetic_id() -> str:
    """A test-register id: month + 80."""
    for individual in range(100, 400):
        try:
            return fnr(f"018190{individual:03d}")
        except AssertionError:
            continue
    raise AssertionError


def claim(person: int | str | None, when: str, codes: list[str] | None = None, **extra: object) -> dict:
    fnr_value = P[person] if isinstance(person, int) else person
    return {"pasient_fnr": fnr_value, "when": when, "diagnosekoder": codes or ["A04"], "pasient_alder": 10, **extra}


ROWS = [
    claim(1, "2019-03-01T10:00:00", ["A04", "R74"]),  # entry code in second position
    claim(1, "2020-05-05T10:00:00", ["L03"]),  # a claim that is not an entry claim
    claim(2, "2019-04-01T10:00:00", ["J069"]),  # prefix J0*
    claim(3, "2019-05-01T10:00:00", ["R75"]),  # no entry code
    claim(4, "2019-01-01T00:00:00", ["R74"]),  # first second of the period
    claim(5, "2020-12-31T23:59:59", ["R74"]),  # last second of the period
    claim(6, "2018-12-31T23:59:59", ["R74"]),  # just before the period
    claim(7, "2021-01-01T00:00:00", ["R74"]),  # just after the period
    claim(8, "2019-06-01T10:00:00", ["R74"], pasient_alder=15),  # first entry claim at 15 ...
    claim(8, "2020-06-01T10:00:00", ["R74"], pasient_alder=16),  # ... later 16: age counts on the first
    claim(9, "2019-06-01T10:00:00", ["R74"], pasient_alder=16),  # too old on the first entry claim
    claim(10, "2019-02-01T10:00:00", ["R74"], pasient_bostedskommune="0301"),  # moves away later: in
    claim(10, "2020-02-01T10:00:00", ["R74"], pasient_bostedskommune="4601"),
    claim(11, "2019-02-01T10:00:00", ["R74"], pasient_bostedskommune="4601"),  # moves to Oslo later: out
    claim(11, "2020-02-01T10:00:00", ["R74"], pasient_bostedskommune="0301"),
    claim(12, "2019-02-01T10:00:00", ["R74"]),  # excluded: P76 inside the period
    claim(12, "2020-08-01T10:00:00", ["P76"]),
    claim(13, "2019-02-01T10:00:00", ["R74"]),  # P76 outside the period does not exclude
    claim(13, "2018-08-01T10:00:00", ["P76"]),
    # a tie: the same time, the smallest regning_id is the first entry claim
    claim(14, "2019-09-09T09:09:09", ["R74"], regning_id="T0000099", pasient_bostedskommune="0301"),
    claim(14, "2019-09-09T09:09:09", ["R74"], regning_id="T0000100", pasient_bostedskommune="4601"),
    claim(15, "2019-09-09T09:09:09", ["R74"], regning_id="T0000199", pasient_bostedskommune="4601"),
    claim(15, "2019-09-09T09:09:09", ["R74"], regning_id="T0000200", pasient_bostedskommune="0301"),
    claim(16, "2019-03-03T10:00:00", ["R74"]),  # D-number
    claim(17, "2019-03-03T10:00:00", ["R74"]),  # H-number
    claim(18, "2019-03-03T10:00:00", ["R74"], pasient_kjonn=1),  # wrong sex
    claim(19, "2019-03-03T10:00:00", ["R74"], behandler_praksistype="SPES"),  # wrong practice type
    # claims without a usable id
    claim(None, "2019-03-03T10:00:00", ["R74"]),
    claim("", "2019-03-03T10:00:00", ["R74"]),
    claim("123", "2019-03-03T10:00:00", ["R74"]),
    claim("0101901234X", "2019-03-03T10:00:00", ["R74"]),
    claim(P[1][:10] + str((int(P[1][10]) + 1) % 10), "2019-03-03T10:00:00", ["R74"]),  # bad check digit
    claim(_synthetic_id(), "2019-03-03T10:00:00", ["R74"]),  # a synthetic test person
]
EXPECTED = [1, 2, 4, 5, 8, 10, 13, 14, 16, 17]

SPEC = {
    "cohort": {
        "entry": {"diagnoses": ["R74", "J0*"], "praksistyper": ["FALE", "LEVA"]},
        "age": {"min": 0, "max": 15},
        "sex": [2],
        "bostedskommuner": ["03*"],
        "exclude": {"diagnoses": ["P*"]},
    },
    "period": {"from": "2019-01-01", "to": "2020-12-31"},
}


@pytest.fixture(params=SOURCE_ORDERS)
def source(request: pytest.FixtureRequest, tmp_path: Path):
    """The hand-built claims in either order: the order of the source never changes what is selected."""
    rows, row_group_size = in_order(request.param, ROWS)
    return open_source(write_source(tmp_path / "source", rows, row_group_size))


def _spec(spec_dir: Path, **changes: object):
    merged = {**SPEC, **changes}
    return load_spec(write_spec(spec_dir, merged)).spec


def test_exact_cohort_person_by_person(source, spec_dir: Path, tmp_path: Path) -> None:
    spec = _spec(spec_dir)
    result = select_cohort(source, spec, MASTER, staging_in(tmp_path / "stage"))
    got = set(read_staged(result.path).column("pasient_pseudonym").to_pylist())
    assert got == {pseudonym(MASTER, DOMAIN, P[n]) for n in EXPECTED}
    assert [p.name for p in (tmp_path / "stage").iterdir()] == [result.path.name]  # pass 1's labels are gone


def test_attrition_in_contract_order(source, spec_dir: Path, tmp_path: Path) -> None:
    found = find_cohort(source, _spec(spec_dir), staging_in(tmp_path / "stage"))
    attrition = found.attrition
    assert found.persons_per_age_group == {"10-19": 10}  # ages 10 (nine persons) and 15 (P8)
    assert attrition.steps == [
        ("persons with a claim in the period", 17),
        ("with an entry claim", 15),
        ("with at least 1 entry claims", 15),
        ("after age", 14),
        ("after sex", 13),
        ("after kommune", 11),
        ("after exclusion (the cohort)", 10),
    ]
    assert attrition.dropped_claims == {
        IdReason.MISSING: 2,
        IdReason.MALFORMED: 2,
        IdReason.BAD_CHECK_DIGITS: 1,
        IdReason.SYNTHETIC: 1,
    }
    table = attrition.table().to_pylist()
    assert table[0] == {"step": "persons with a claim in the period", "persons": "17", "bills": None}
    dropped = {row["step"]: row["bills"] for row in table if row["bills"] is not None}
    assert dropped["bills dropped: missing fødselsnummer"] == "<5"
    assert dropped["bills dropped: synthetic test number"] == "<5"


def test_min_entry_claims(source, spec_dir: Path, tmp_path: Path) -> None:
    spec = _spec(spec_dir, cohort={**SPEC["cohort"], "min_entry_claims": 2})
    result = select_cohort(source, spec, MASTER, staging_in(tmp_path / "stage"))
    got = set(read_staged(result.path).column("pasient_pseudonym").to_pylist())
    assert got == {pseudonym(MASTER, DOMAIN, P[n]) for n in (8, 10, 14)}


def test_claims_all_versus_entry(source, spec_dir: Path, tmp_path: Path) -> None:
    all_claims = select_cohort(source, _spec(spec_dir), MASTER, staging_in(tmp_path / "all"))
    entry_only = select_cohort(source, _spec(spec_dir, claims="entry"), MASTER, staging_in(tmp_path / "entry"))
    # 13 entry claims of the cohort, plus person 1's L03 claim under `all`; person 13's P76 claim is
    # outside the period and never delivered
    assert all_claims.rows == 14
    assert entry_only.rows == 13
    no_exclusion = {**SPEC["cohort"], "exclude": None}
    assert select_cohort(source, _spec(spec_dir, cohort=no_exclusion), MASTER, staging_in(tmp_path / "x")).rows == 16
    entry_x = _spec(spec_dir, cohort=no_exclusion, claims="entry")
    assert select_cohort(source, entry_x, MASTER, staging_in(tmp_path / "y")).rows == 14


def test_another_linkage_domain_gives_disjoint_pseudonyms(source, spec_dir: Path, tmp_path: Path) -> None:
    a = select_cohort(source, _spec(spec_dir), MASTER, staging_in(tmp_path / "a"))
    b = select_cohort(source, _spec(spec_dir, linkage_domain="OTHER-1"), MASTER, staging_in(tmp_path / "b"))
    left = set(read_staged(a.path).column("pasient_pseudonym").to_pylist())
    right = set(read_staged(b.path).column("pasient_pseudonym").to_pylist())
    assert left and right and not left & right
    assert right == {pseudonym(MASTER, "OTHER-1", P[n]) for n in EXPECTED}


def test_same_spec_and_key_twice_gives_identical_claims(source, spec_dir: Path, tmp_path: Path) -> None:
    a = select_cohort(source, _spec(spec_dir), MASTER, staging_in(tmp_path / "a"))
    b = select_cohort(source, _spec(spec_dir), MASTER, staging_in(tmp_path / "b"))
    assert read_staged(a.path).equals(read_staged(b.path))


def test_empty_cohort_is_a_result(source, spec_dir: Path, tmp_path: Path) -> None:
    spec = _spec(spec_dir, cohort={"entry": {"diagnoses": ["Z99"]}})
    result = select_cohort(source, spec, MASTER, staging_in(tmp_path / "stage"))
    assert result.persons == 0 and result.rows == 0
    assert read_staged(result.path).num_rows == 0
    assert result.attrition.steps[1] == ("with an entry claim", 0)
    assert result.profile.claims_per_month == {}


def test_profile_masks_small_counts(source, spec_dir: Path, tmp_path: Path) -> None:
    profile = select_cohort(source, _spec(spec_dir), MASTER, staging_in(tmp_path / "stage")).profile
    assert profile.persons_per_age_group == {"10-19": "10"}
    assert profile.claims_per_month["2019-09"] == "<5"


def test_code_columns_are_staged_as_plain_text(source, spec_dir: Path, tmp_path: Path) -> None:
    """Pass 2 reads code columns as dictionaries and the claim id as bytes; what it stages is the
    source's text, value for value."""
    variables = [
        "pasient_pseudonym",
        "regning_id",
        "behandler_praksistype",
        {"name": "pasient_bostedskommune", "as": "kommune"},
        "diagnosekoder",
    ]
    result = select_cohort(source, _spec(spec_dir, variables=variables), MASTER, staging_in(tmp_path / "stage"))
    staged = read_staged(result.path)
    assert staged.schema.field("regning_id").type == pa.string()
    assert staged.schema.field("behandler_praksistype").type == pa.string()
    assert staged.schema.field("pasient_bostedskommune").type == pa.string()
    assert staged.schema.field("diagnosekoder").type == pa.list_(pa.string())
    assert set(staged.column("behandler_praksistype").to_pylist()) <= {"FALE", "LEVA"}
    assert "0301" in staged.column("pasient_bostedskommune").to_pylist()
    assert ["A04", "R74"] in staged.column("diagnosekoder").to_pylist()  # P1's entry claim, in order


def test_a_source_rewritten_between_the_passes_is_refused(
    source, spec_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pass 2 takes each claim's person from pass 1's labels, row for row: if the export changes in
    between (here one claim moves by a second), the run stops and nothing is left in staging."""
    import kuhr_pipeline.cohort as cohort_package

    real_find_cohort = cohort_package.find_cohort_in

    def find_then_rewrite(*args, **kwargs):
        found = real_find_cohort(*args, **kwargs)
        moved = [dict(row) for row in ROWS]
        moved[0]["when"] = "2019-03-01T10:00:01"
        write_source(source.path, moved)
        return found

    monkeypatch.setattr(cohort_package, "find_cohort_in", find_then_rewrite)
    stage = tmp_path / "stage"
    with pytest.raises(SourceError, match="changed while it was being read"):
        select_cohort(source, _spec(spec_dir), MASTER, staging_in(stage))
    assert list(stage.iterdir()) == []


def test_only_bills_inside_the_period_count(source, spec_dir: Path, tmp_path: Path) -> None:
    """A period starting mid-year filters rows inside a file's row group: persons and refused ids
    of the claims before it are not counted (ids are read dictionary-encoded, and a row group's
    dictionary also holds the ids of rows the filter drops)."""
    spec = _spec(spec_dir, period={"from": "2019-06-01", "to": "2020-12-31"})
    found = find_cohort(source, spec, staging_in(tmp_path / "stage"))
    assert found.attrition.steps[0] == ("persons with a claim in the period", 9)  # P1 5 8 9 10 11 12 14 15
    assert set(found.attrition.dropped_claims.values()) == {0}  # the refused ids are all from March 2019


def test_codes_match_plain_and_dictionary_encoded_alike() -> None:
    """Pass 1 matches codes read dictionary-encoded on their dictionary: same rows as plain text."""
    values = pa.array(["R74", None, "J069", "R7", "J0", "A04", "R74"], pa.string())
    patterns = ["R74", "J0*"]
    expected = [True, False, True, False, True, False, True]
    assert codes_match(values, patterns).tolist() == expected
    assert codes_match(pc.dictionary_encode(values), patterns).tolist() == expected
    assert codes_match(pc.dictionary_encode(values).slice(2, 3), patterns).tolist() == expected[2:5]


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"claims": "entry"},
        {"cohort": {**SPEC["cohort"], "min_entry_claims": 2}},  # P8 and P10: entry claims in both years
        {"cohort": {"entry": {"diagnoses": ["R74"]}, "exclude": {"diagnoses": ["P*"]}}},
        {"period": {"from": "2019-06-01", "to": "2020-12-31"}},
    ],
)
def test_a_year_at_a_time_gives_the_same_cohort_and_claims(source, spec_dir: Path, tmp_path: Path, changes) -> None:
    """The fanned-out job reads each pass a year at a time (a step per year) and merges: the same
    persons, attrition, picture and claims, in the same order, as one pass over the period."""
    spec = _spec(spec_dir, **changes)
    whole = select_cohort(source, spec, MASTER, staging_in(tmp_path / "whole"))
    by_year = select_cohort(source, spec, MASTER, staging_in(tmp_path / "by-year"), per_year=True)
    assert read_staged(by_year.path).equals(read_staged(whole.path))
    assert (by_year.rows, by_year.persons, by_year.attrition, by_year.profile) == (
        whole.rows,
        whole.persons,
        whole.attrition,
        whole.profile,
    )
    assert [p.name for p in (tmp_path / "by-year").iterdir()] == [by_year.path.name]  # the groups' files are gone
