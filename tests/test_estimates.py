"""Estimates answer open questions without adding up to small groups: each person count is
perturbed by the cell key method (record keys from the pseudonym key, a fixed perturbation
table), then masked and rounded to 5; the same question gets the same answer."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from kuhr_pipeline.disclosure.cell_key import MAX_DEVIATION, PERTURBATION_TABLE, deviation, perturbed
from kuhr_pipeline.identity.keys import read_master_key
from tests.helpers import hkdf_sha256, run_cli, small_application, write_spec


def test_the_perturbation_table_is_pinned_and_keeps_its_promises() -> None:
    assert MAX_DEVIATION == 2
    assert PERTURBATION_TABLE == {
        0: ((0, 1.0),),
        1: ((-1, 0.25), (0, 0.5), (1, 0.25)),
        2: ((-2, 0.05), (-1, 0.2), (0, 0.5), (1, 0.2), (2, 0.05)),
    }
    for count, row in PERTURBATION_TABLE.items():
        assert sum(p for _, p in row) == pytest.approx(1.0)
        assert sum(d * p for d, p in row) == pytest.approx(0.0)  # unbiased
        assert all(count + d >= 0 and abs(d) <= MAX_DEVIATION for d, _ in row)  # never below zero
    keys = np.linspace(0, 1, 10_000, endpoint=False)
    assert {deviation(0, k) for k in keys} == {0}  # zero stays zero
    assert {deviation(1, k) for k in keys} == {-1, 0, 1}
    assert {deviation(500, k) for k in keys} == {-2, -1, 0, 1, 2}
    assert deviation(7, 0.0) == -2 and deviation(7, 0.05) == -1 and deviation(7, 0.25) == 0 and deviation(7, 0.75) == 1
    assert deviation(7, 0.95) == 2 and deviation(7, 0.999) == 2 and perturbed(1, 0.0) == 0


def _record_key(master: bytes, number: int) -> float:
    """The documented record key, by hand: HKDF(master, salt kuhr-pipeline/record-key/v1), then
    the first 64 bits of HMAC-SHA256 over the id's eleven digits."""
    key = hkdf_sha256(master, b"kuhr-pipeline/record-key/v1", b"")
    return int.from_bytes(hmac.new(key, b"%011d" % number, hashlib.sha256).digest()[:8], "big") / 2.0**64


@pytest.fixture
def draft(tmp_path: Path, keys_env: dict[str, Path]) -> tuple[Path, Path]:
    source, spec = small_application(tmp_path, "EST-1", seed=51)
    return source, write_spec(spec.parent, {"application_id": "EST-1", "approval.status": "draft"}, name="EST-1.yaml")


def test_each_count_is_the_cell_key_methods_and_the_same_question_gets_the_same_answer(
    draft, keys_env, capsys, monkeypatch
) -> None:
    from kuhr_pipeline import cohort as cohort_package

    source, spec = draft
    members: dict[str, np.ndarray] = {}
    find = cohort_package.find_cohort

    def keeping_members(*args, **kwargs):  # what the estimate counted, kept by the test
        on_members = args[4] if len(args) > 4 else kwargs["on_members"]

        def both(step: str, persons: np.ndarray) -> None:
            members[step] = persons.copy()
            on_members(step, persons)

        return find(*args[:4], on_members=both) if len(args) > 4 else find(*args, **{**kwargs, "on_members": both})

    monkeypatch.setattr("kuhr_pipeline.estimate.find_cohort", keeping_members)
    code, out, err = run_cli(["estimate", spec, "--source", source, "--json"], capsys)
    assert code == 0, err
    first = json.loads(out)
    assert first["counts"] == "counts perturbed by the cell key method, masked below the threshold and rounded to 5"
    master = read_master_key(keys_env["master"])
    for row in first["attrition"]:
        if "persons" not in row:
            continue
        persons = members[row["step"]]
        count = len(persons)
        cell_key = float(np.modf(sum(_record_key(master, int(n)) for n in persons))[0])
        expected = max(0, count + deviation(count, cell_key))
        shown = "<5" if 0 < expected < 5 else str((expected + 2) // 5 * 5)
        assert row["persons"] == shown, (row, count, cell_key)
    code, out, err = run_cli(["estimate", spec, "--source", source, "--json"], capsys)
    assert json.loads(out) == first  # the same question, the same answer


def test_answers_one_person_apart_do_not_give_that_person_away(draft, keys_env, capsys) -> None:
    """Age bounds one year apart, the period's end moved day by day (the bisection that once
    found a person's first claim date), one kommune more: every shown count is a multiple of 5 or
    <5, so no difference of two answers is a small group's count."""
    source, spec = draft
    answers = []
    for changes in (
        {"cohort.age": {"min": 18, "max": 88}},
        {"cohort.age": {"min": 18, "max": 87}},
        *({"period.to": f"2020-06-{day:02d}"} for day in (10, 11, 12, 13)),
        {"cohort.bostedskommuner": ["03*"]},
        {"cohort.bostedskommuner": ["03*", "1103"]},  # one kommune more
    ):
        spec = write_spec(spec.parent, {"application_id": "EST-1", "approval.status": "draft", **changes}, "EST-1.yaml")
        code, out, err = run_cli(["estimate", spec, "--source", source, "--json"], capsys)
        assert code == 0, err
        answers.append({row["step"]: row.get("persons") for row in json.loads(out)["attrition"]})
    for answer in answers:
        for shown in filter(None, answer.values()):
            assert shown == "<5" or int(shown) % 5 == 0, answer
    for a, b in itertools.pairwise(answers):
        for step in set(a) & set(b):
            if a[step] and b[step] and "<" not in a[step] + b[step]:
                assert (int(a[step]) - int(b[step])) % 5 == 0


def test_record_and_cell_keys_are_the_documented_ones() -> None:
    from kuhr_pipeline.disclosure.cell_key import CellKeys, RecordKeys

    master = bytes(range(32))
    numbers = np.array([1028010008, 31128010077, 5], dtype=np.int64)
    record = RecordKeys(master)
    expected = [_record_key(master, int(n)) for n in numbers]
    assert record.of(numbers).tolist() == expected and all(0 <= k < 1 for k in expected)
    assert "key hidden" in repr(record) and master.hex() not in repr(record)
    cells = CellKeys(record, numbers[::-1])
    subset = numbers[[0, 2]]
    assert cells.of(subset) == pytest.approx(float(np.modf(expected[0] + expected[2])[0]), abs=1e-12)
    assert cells.of(numbers[:0]) == 0.0
