"""Diagnoses tied to their code system: a claim matches only through the list of its own
`diagnosekodeverk` (application contract, "Code systems")."""

from __future__ import annotations

from pathlib import Path

import pytest

from kuhr_pipeline.application import load_spec
from kuhr_pipeline.cohort import select_cohort
from kuhr_pipeline.source import open_source
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
GP = {"behandler_praksistype": "FALE", "diagnosekodeverk": "ICPC-2"}
SPECIALIST = {"behandler_praksistype": "SPES", "diagnosekodeverk": "ICD-10"}


def claim(n: int, when: str, codes: list[str], practice: dict) -> dict:
    return {"pasient_fnr": person_id(n), "when": when, "diagnosekoder": codes, **practice}


ROWS = [
    claim(1, "2019-03-01T10:00:00", ["R74"], GP),  # an ICPC-2 R74: a respiratory infection
    claim(2, "2019-03-01T10:00:00", ["R74"], SPECIALIST),  # an ICD-10 R74: abnormal serum enzymes
    claim(3, "2019-03-01T10:00:00", ["J069"], SPECIALIST),  # ICD-10 J06.9
    claim(4, "2019-03-01T10:00:00", ["J069"], GP),  # not an ICPC-2 code: only a plain list matches it
    claim(5, "2019-03-01T10:00:00", ["R74"], GP),
    claim(5, "2019-06-01T10:00:00", ["P76"], GP),  # ICPC-2 P76 (depression): excluded under ICPC-2
    claim(6, "2019-03-01T10:00:00", ["R74"], GP),
    claim(6, "2019-06-01T10:00:00", ["P76"], SPECIALIST),  # ICD-10 P76 (perinatal): not an ICPC-2 exclusion
]
for n in range(1, 7):  # a claim in 2020 too: the source has both years of the period
    ROWS.append(claim(n, "2020-01-10T10:00:00", ["A04"], GP))


@pytest.fixture(params=SOURCE_ORDERS)
def source(request: pytest.FixtureRequest, tmp_path: Path):
    rows, row_group_size = in_order(request.param, ROWS)
    return open_source(write_source(tmp_path / "source", rows, row_group_size))


def cohort(source, spec_dir: Path, tmp_path: Path, entry: object, exclude: object = None) -> set[int]:
    cohort_spec: dict = {"entry": {"diagnoses": entry}}
    if exclude is not None:
        cohort_spec["exclude"] = {"diagnoses": exclude}
    spec = load_spec(
        write_spec(spec_dir, {"cohort": cohort_spec, "period": {"from": "2019-01-01", "to": "2020-12-31"}})
    ).spec
    result = select_cohort(source, spec, MASTER, staging_in(tmp_path / f"stage-{len(list(tmp_path.iterdir()))}"))
    got = set(read_staged(result.path).column("pasient_pseudonym").to_pylist())
    return {n for n in range(1, 7) if pseudonym(MASTER, "TEST-0001", person_id(n)) in got}


def test_a_code_matches_only_in_its_own_system(source, spec_dir, tmp_path) -> None:
    assert cohort(source, spec_dir, tmp_path, {"ICPC-2": ["R74"]}) == {1, 5, 6}
    assert cohort(source, spec_dir, tmp_path, {"ICD-10": ["R74"]}) == {2}
    assert cohort(source, spec_dir, tmp_path, {"ICD-10": ["J0*"]}) == {3}
    assert cohort(source, spec_dir, tmp_path, {"ICPC-2": ["R74"], "ICD-10": ["J069"]}) == {1, 3, 5, 6}


def test_a_plain_list_matches_every_system(source, spec_dir, tmp_path) -> None:
    assert cohort(source, spec_dir, tmp_path, ["R74"]) == {1, 2, 5, 6}
    assert cohort(source, spec_dir, tmp_path, ["J069"]) == {3, 4}


def test_an_exclusion_is_tied_to_its_system_too(source, spec_dir, tmp_path) -> None:
    assert cohort(source, spec_dir, tmp_path, {"ICPC-2": ["R74"]}, {"ICPC-2": ["P7*"]}) == {1, 6}
    assert cohort(source, spec_dir, tmp_path, {"ICPC-2": ["R74"]}, ["P76"]) == {1}


@pytest.mark.parametrize(
    "diagnoses, message",
    [
        ({"ICD-9": ["250"]}, "cohort.entry.diagnoses.ICD-9: is not a key of the application spec contract"),
        ({"ICPC-2": []}, "cohort.entry.diagnoses.ICPC-2: List should have at least 1 item"),
        ({}, "cohort.entry.diagnoses: Value error, names no code system"),
    ],
)
def test_a_bad_mapping_is_refused_naming_the_field(spec_dir, capsys, diagnoses, message) -> None:
    code, out, err = run_cli(["check", write_spec(spec_dir, {"cohort.entry.diagnoses": diagnoses})], capsys)
    assert code == 2 and message in err and err.count("\n") == 1, err


def test_check_advises_on_a_plain_list_and_on_codes_outside_their_system(spec_dir, capsys) -> None:
    code, out, err = run_cli(["check", write_spec(spec_dir, {"cohort.entry.diagnoses": ["R74"]})], capsys)
    assert code == 0 and "cohort.entry.diagnoses is a plain list: it matches ICPC-2 and ICD-10 codes alike" in out
    mapping = {"ICPC-2": ["J069", "R7*", "R74"], "ICD-10": ["J069", "R74", "Q*", "1234"]}
    code, out, err = run_cli(["check", write_spec(spec_dir, {"cohort.entry.diagnoses": mapping})], capsys)
    assert code == 0, err
    advised = [line for line in out.splitlines() if "does not look like" in line]
    assert advised == [
        "advisory: cohort.entry.diagnoses.ICPC-2: 'J069' does not look like an ICPC-2 code",
        "advisory: cohort.entry.diagnoses.ICD-10: '1234' does not look like an ICD-10 code",
    ]
    assert "plain list" not in out
