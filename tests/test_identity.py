"""Fødselsnummer rules, key files and the documented pseudonym algorithm."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from kuhr_pipeline.errors import KeyFileError
from kuhr_pipeline.identity.fodselsnummer import IdKind, IdReason, check_ids, id_slots, is_valid
from kuhr_pipeline.identity.keys import read_master_key
from kuhr_pipeline.identity.pseudonym import Pseudonymiser
from tests.helpers import fnr, person_id, pseudonym


def reasons(values: list[str | None]) -> list[int]:
    return check_ids(pa.array(values, pa.string())).reason.tolist()


def test_valid_fodselsnummer_and_kinds() -> None:
    ordinary, d_number, h_number = person_id(1), person_id(2, d_number=True), person_id(3, h_number=True)
    result = check_ids(pa.array([ordinary, d_number, h_number]))
    assert result.reason.tolist() == [IdReason.VALID] * 3
    assert result.kind.tolist() == [IdKind.FNR, IdKind.D_NUMBER, IdKind.H_NUMBER]
    assert result.number.tolist() == [int(ordinary), int(d_number), int(h_number)]


def test_refusal_reasons() -> None:
    good = person_id(4)
    bad_check = good[:10] + str((int(good[10]) + 1) % 10)
    assert reasons([None, "", "   ", "123", "0101901234X", "0101901234567", bad_check]) == [
        IdReason.MISSING,
        IdReason.MISSING,
        IdReason.MISSING,
        IdReason.MALFORMED,
        IdReason.MALFORMED,
        IdReason.MALFORMED,
        IdReason.BAD_CHECK_DIGITS,
    ]


def test_impossible_date_is_malformed() -> None:
    assert reasons([fnr("320190123")]) == [IdReason.MALFORMED]  # day 32
    assert reasons([fnr("011390123")]) == [IdReason.MALFORMED]  # month 13


def test_synthetic_test_person_is_refused() -> None:
    assert reasons([fnr("018190123")]) == [IdReason.SYNTHETIC]


def test_2032_rule_accepts_k1_remainders_one_to_three() -> None:
    accepted = set()
    for remainder in (1, 2, 3):
        for individual in range(500, 520):
            try:
                number = fnr(f"150632{individual:03d}", k1_remainder=remainder)
            except AssertionError:
                continue
            assert is_valid(number), (remainder, number)
            accepted.add(remainder)
    assert accepted == {1, 2, 3}


def test_2032_rule_stops_at_remainder_three() -> None:
    """k1 remainder 4 is neither rule: the number is invalid (an invalid check digit), however
    close it is to a valid one (the same first nine digits with remainder 3 are valid)."""
    checked = 0
    for individual in range(500, 560):
        nine = f"150632{individual:03d}"
        try:
            fourth, third = fnr(nine, k1_remainder=4), fnr(nine, k1_remainder=3)
        except AssertionError:
            continue
        assert not is_valid(fourth), fourth
        assert reasons([fourth]) == [IdReason.BAD_CHECK_DIGITS]
        assert is_valid(third), third
        checked += 1
    assert checked >= 10


def test_non_ascii_digits_are_malformed() -> None:
    assert reasons(["٠١٠١٩٠١٢٣٤٥"]) == [IdReason.MALFORMED]


def test_batch_slots_count_rows_like_the_row_check() -> None:
    """Pass 1 checks each distinct id once and counts refused claims per slot; it must agree with
    checking every row."""
    good, other = person_id(5), person_id(6, d_number=True)
    values = [good, good, None, "", "123", good[:10] + str((int(good[10]) + 1) % 10), other, None, fnr("018190123")]
    slots = id_slots(pa.array(values, pa.string()))
    assert slots.rows_per_reason().tolist() == np.bincount(reasons(values), minlength=len(IdReason)).tolist()
    valid = slots.reason == IdReason.VALID
    assert sorted(slots.number[valid].tolist()) == sorted([int(good), int(other)])
    assert slots.number[slots.slot].tolist() == check_ids(pa.array(values, pa.string())).number.tolist()


def test_pseudonym_matches_documented_algorithm() -> None:
    master = bytes.fromhex("00" * 16 + "ff" * 16)
    ids = [person_id(5), person_id(6)]
    p = Pseudonymiser(master, "HDS-2026-0042")
    assert p.many(ids) == [pseudonym(master, "HDS-2026-0042", i) for i in ids]
    numbers = np.array([int(i) for i in ids], dtype=np.int64)
    assert p.fnr_numbers(numbers).to_pylist() == [pseudonym(master, "HDS-2026-0042", i) for i in ids]
    assert "key" not in repr(p).replace("<key hidden>", "") and master.hex() not in repr(p)


def test_leading_zero_ids_keep_eleven_digits() -> None:
    master = bytes(32)
    number = person_id(7)
    assert number.startswith("0")
    got = Pseudonymiser(master, "D").fnr_numbers(np.array([int(number)]))
    assert got.to_pylist() == [pseudonym(master, "D", number)]


def test_master_key_file_errors(tmp_path: Path) -> None:
    secret = "ab" * 40
    short = tmp_path / "short.key"
    short.write_text("ab" * 8)
    not_hex = tmp_path / "nothex.key"
    not_hex.write_text("zz" + secret)
    for path, text in ((tmp_path / "missing.key", "no such key file"), (short, "at least 32"), (not_hex, "hex")):
        with pytest.raises(KeyFileError) as caught:
            read_master_key(path)
        assert text in str(caught.value) and str(path) in str(caught.value)
        assert secret not in str(caught.value)
    good = tmp_path / "good.key"
    good.write_text(" ".join([secret[:20], secret[20:]]) + "\n")
    assert read_master_key(good) == bytes.fromhex(secret)


def test_unset_key_variable_is_clear() -> None:
    with pytest.raises(KeyFileError, match="KUHR_PSEUDONYM_KEY_FILE: is not set"):
        read_master_key(None)
