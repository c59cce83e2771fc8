"""The leak guard finds a fødselsnummer however it is written, and lets through what only looks
like one: each spelling a hostile tester delivered, the Unicode ones, generated separators and
digit scripts, and the edges of each rule pinned."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kuhr_pipeline.quality.leak_guard import (
    CENTURIES,
    MAX_SEPARATORS,
    SHORT_WORDS,
    holds_fodselsnummer,
    text_holds_fodselsnummer,
)
from tests.helpers import fnr

ID = fnr("010280100")  # 01.02.1980, individual number 100
DATE, PERSONAL = ID[:6], ID[6:]
LONG_DATE = "01021980"

SPELLINGS = [
    ID,
    f"{DATE} {PERSONAL}",
    f"01.02.1980 {PERSONAL}",
    f"{DATE}\u2013{PERSONAL}",  # en dash
    f"{DATE}\u00a0{PERSONAL}",  # no-break space
    f"{DATE} -- {PERSONAL}",
    f"{DATE}_{PERSONAL}",
    f"{DATE}:{PERSONAL}",
    f"fnr {LONG_DATE} {PERSONAL}",
    "".join(chr(0xFF10 + int(c)) for c in ID),  # fullwidth digits
    "".join(chr(0x0660 + int(c)) for c in ID),  # Arabic-Indic digits
    f"{DATE}\u200b{PERSONAL}",  # zero-width space
    f"[{DATE}] ({PERSONAL})",
    f"{DATE} nr {PERSONAL}",
    f"{DATE} f.nr. {PERSONAL}",
    "0 1 0 2 8 0 - 1 0 0 0 8",
    f"{LONG_DATE}{PERSONAL}",
    f"Pasienten ({DATE}/{PERSONAL}) møtte ikke.",
]


@pytest.mark.parametrize("text", SPELLINGS)
def test_every_spelling_is_found(text: str) -> None:
    assert text_holds_fodselsnummer(text), text
    assert holds_fodselsnummer(pa.array(["nothing here", text, None])).tolist() == [False, True, False]


LOOKALIKES = [
    ID[:9] + str((int(ID[9]) + 1) % 10) + ID[10],  # a valid date, wrong check digits
    "kontonummer 1503.12.34567",  # an account number
    "01.02.2020 kl 10:15, behandler 1234567 i 0301",
    "egenandel 123.00 kr, refusjon 456.00 kr",
    f"{DATE} kl {PERSONAL}",  # a word that is not fnr/nr breaks the chain
    f"{DATE}{' ' * (MAX_SEPARATORS + 1)}{PERSONAL}",
]


@pytest.mark.parametrize("text", LOOKALIKES)
def test_what_only_looks_like_an_id_passes(text: str) -> None:
    assert not text_holds_fodselsnummer(text), text


def test_the_rules_edges_are_pinned() -> None:
    assert MAX_SEPARATORS == 5 and SHORT_WORDS == ("fnr", "f.nr", "nr") and CENTURIES == ("18", "19", "20")
    assert text_holds_fodselsnummer(f"{DATE}{' ' * MAX_SEPARATORS}{PERSONAL}")
    assert not text_holds_fodselsnummer(f"{DATE}{' ' * (MAX_SEPARATORS + 1)}{PERSONAL}")
    for separator in " \u00a0\u2009\u3000-\u2010\u2011\u2012\u2013\u2014\u2212./_:\\()[]{},;+*#|'\"":
        assert text_holds_fodselsnummer(f"{DATE}{separator}{PERSONAL}"), repr(separator)
    assert text_holds_fodselsnummer(f"0102 1980 {PERSONAL}")
    assert not text_holds_fodselsnummer(f"0102 2180 {PERSONAL}")  # no century 21: not read as a year


SEPARATORS = st.sampled_from([" ", "\u00a0", "\u2009", "\u202f", "-", "\u2013", "\u2014", ".", "/", "_", ":", "\u200b"])
SCRIPTS = st.sampled_from([0x30, 0xFF10, 0x0660, 0x06F0, 0x0966, 0x09E6])  # ASCII, fullwidth, Arabic-Indic …


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_generated_separators_and_digit_scripts_are_found(data: st.DataObject) -> None:
    zero = data.draw(SCRIPTS)
    text = ""
    for k, digit in enumerate(ID):
        text += chr(zero + int(digit))
        if k < len(ID) - 1 and data.draw(st.booleans()):
            text += "".join(data.draw(st.lists(SEPARATORS, min_size=1, max_size=2)))
    prefix = data.draw(st.sampled_from(["", "fnr ", "se ", "pasient: "]))
    assert text_holds_fodselsnummer(prefix + text), repr(text)


def test_invisible_characters_are_dropped_before_separators_are_counted() -> None:
    """Six zero-width spaces are six separators (more than MAX_SEPARATORS) unless dropped first."""
    assert text_holds_fodselsnummer(f"{DATE}{chr(0x200B) * (MAX_SEPARATORS + 1)}{PERSONAL}")
    assert text_holds_fodselsnummer(f"{DATE}{chr(0x00AD) * (MAX_SEPARATORS + 1)}{PERSONAL}")  # soft hyphens


def test_every_chain_of_a_text_is_read() -> None:
    assert text_holds_fodselsnummer(f"{DATE} {PERSONAL} kl 12345678901")
    assert text_holds_fodselsnummer(f"ref 12345678901, {DATE} {PERSONAL}")
    assert text_holds_fodselsnummer(f"ref 12345678901, 01.02.1980 {PERSONAL}")


def test_the_guard_reads_any_column_type() -> None:
    other = fnr("311280100")  # no leading zero: survives as an integer
    assert holds_fodselsnummer(pa.chunked_array([["x"], [f"a {DATE}-{PERSONAL}", None]])).tolist() == [
        False,
        True,
        False,
    ]
    assert holds_fodselsnummer(pa.array(["x", ID], pa.large_string())).tolist() == [False, True]
    assert holds_fodselsnummer(pa.array([int(other), 12345], pa.int64())).tolist() == [True, False]
    assert holds_fodselsnummer(pa.array([], pa.string())).dtype == bool
