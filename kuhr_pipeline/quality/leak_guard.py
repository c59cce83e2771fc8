"""The leak guard: does a text hold a national id, however it is written?

One function decides (`text_holds_fodselsnummer`); the guard runs it on every delivered text
value (every string column but the pseudonyms and the claim's own identifier, free text
included), and anything that shows text from the source asks it first.

How a text is read:
1. Normalised: NFKC (fullwidth digits and spaces become plain ones), every decimal digit of any
   script becomes its ASCII digit (Arabic-Indic, Devanagari …), and invisible format characters
   (zero-width spaces and joiners, soft hyphens, BOM) are dropped.
2. Digits are chained across gaps: up to five separator characters (spaces of every kind, dashes,
   dots, slashes, underscores, colons, brackets, any other punctuation), or a short word with
   separators around it (`fnr`, `f.nr`, `nr`), as in `01.02.80 – 100 08` or `010280 nr 10008`.
   A letter otherwise ends a chain (`kl 10:15`, `kr`), so dates, times and amounts in running
   text stay apart.
3. Each chain's digits are tried as `DDMMYY IIIKK` (every 11 digits in a row) and as
   `DDMMYYYY IIIKK` (every 13 digits whose year starts 18, 19 or 20, read as its 11-digit
   form). A candidate counts when it passes the validator the source scan uses: a real date
   (D- and H-numbers included) and both check digits; synthetic test numbers count as ids here.
So an account number or a valid date with wrong check digits passes the guard.
"""

from __future__ import annotations

import re
import unicodedata

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kuhr_pipeline.identity.fodselsnummer import IdReason, check_ids

ID_DIGITS = 11
LONG_FORM_DIGITS = 13  # DDMMYYYY IIIKK
CENTURIES = ("18", "19", "20")
MAX_SEPARATORS = 5  # between two digits of one chain: `010280 -- 10008` has four
SHORT_WORDS = ("fnr", "f.nr", "nr")  # "fødselsnummer", "number" between the date and the rest

_SEPARATOR = r"(?:[^\w]|_)"
_WORD = "|".join(re.escape(w) for w in SHORT_WORDS)
_GAP = rf"(?:{_SEPARATOR}{{1,{MAX_SEPARATORS}}}|{_SEPARATOR}{{0,3}}(?:{_WORD})\.?{_SEPARATOR}{{0,3}})"
_CHAIN = re.compile(rf"[0-9]+(?:{_GAP}[0-9]+)*", re.IGNORECASE)
_AT_LEAST_ELEVEN_DIGITS = rf"(?:\p{{Nd}}[^\p{{Nd}}]*){{{ID_DIGITS}}}"  # RE2: the cheap first look


def normalise(text: str) -> str:
    """NFKC, every decimal digit as ASCII, invisible format characters (category Cf) dropped."""
    out = []
    for ch in unicodedata.normalize("NFKC", text):
        if unicodedata.category(ch) == "Cf":
            continue
        digit = unicodedata.decimal(ch, None)
        out.append(str(digit) if digit is not None else ch)
    return "".join(out)


def candidates(text: str) -> list[str]:
    """Every 11-digit reading of the text that could be a fødselsnummer (not yet validated)."""
    found = []
    for chain in _CHAIN.finditer(normalise(text)):
        digits = "".join(ch for ch in chain.group() if ch.isdigit())
        found += [digits[i : i + ID_DIGITS] for i in range(len(digits) - ID_DIGITS + 1)]
        for i in range(len(digits) - LONG_FORM_DIGITS + 1):
            if digits[i + 4 : i + 6] in CENTURIES:  # DDMM YYYY IIIKK → DDMM YY IIIKK
                found.append(digits[i : i + 4] + digits[i + 6 : i + LONG_FORM_DIGITS])
    return found


def _valid(readings: list[str]) -> bool:
    if not readings:
        return False
    reasons = check_ids(pa.array(readings, pa.string())).reason
    return bool(np.isin(reasons, (IdReason.VALID, IdReason.SYNTHETIC)).any())


def text_holds_fodselsnummer(text: str) -> bool:
    """The one decision: this text holds a fødselsnummer (see the module's docstring)."""
    return _valid(candidates(text))


def holds_fodselsnummer(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Per value: True where `text_holds_fodselsnummer`. A cheap Arrow regex first finds the
    values with at least eleven digits of any script; only those are read in Python."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        values = pc.cast(values, pa.string())
    out = np.zeros(len(values), dtype=bool)
    maybe = pc.fill_null(pc.match_substring_regex(values, _AT_LEAST_ELEVEN_DIGITS), False)
    for row in np.flatnonzero(maybe.to_numpy(zero_copy_only=False)).tolist():
        out[row] = text_holds_fodselsnummer(values[row].as_py())
    return out
