"""The contract's generalisations, one registry entry each: the vectorised Arrow function, the
expectation its delivered values meet, and the codebook's words. Adding a generalisation is one
entry here (and its name in the catalogue's `generalisations` lists).

group5 → "00-04" … "85-89", "90+"; group10 → "00-09" … "80-89", "90+"; fylke → the first two
digits of a kommune number; kommune → the number, with Oslo, Stavanger, Bergen and Trondheim bydel
codes folded into their kommune (a bydel is finer than a kommune, so never delivered as such);
month → "YYYY-MM"; year → integer; date → date; timestamp and exact → as in the source.

With a geography map (`geography: {map: Y}`), `kommune` and `fylke` first turn each number into
the kommune of Y's map that covers it in its claim's year (catalogue/kommuner.py), so one place is
one kommune and one fylke in every year; a number that is no kommune in its year is "ukjent".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date as Date
from datetime import datetime, time
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from kuhr_pipeline.catalogue.kommuner import UNKNOWN_KOMMUNE, fold_bydeler, kommune_lists

OPEN_AGE = 90
UNKNOWN = UNKNOWN_KOMMUNE  # the label of a missing value where a label is shown (cube cells, age profiles)


def age_label(age: int, width: int) -> str:
    """The age group of `age` ("00-04", …, "90+"); UNKNOWN for a negative (missing) age."""
    if age < 0:
        return UNKNOWN
    low = age // width * width
    return f"{OPEN_AGE}+" if age >= OPEN_AGE else f"{low:02d}-{low + width - 1:02d}"


def age_labels(width: int) -> list[str]:
    return [age_label(age, width) for age in range(0, OPEN_AGE + 1, width)]


def month_label(key: int) -> str:
    """`YYYY-MM` of a key year * 100 + month."""
    return f"{key // 100:04d}-{key % 100:02d}"


def month_labels(start: Date, end: Date) -> list[str]:
    return [
        month_label(y * 100 + m)
        for y in range(start.year, end.year + 1)
        for m in range(1, 13)
        if (start.year, start.month) <= (y, m) <= (end.year, end.month)
    ]


def age_group(values: pa.Array, width: int) -> pa.Array:
    return _labelled(pc.cast(values, pa.int32()), lambda age: age_label(age, width))


def fylke(values: pa.Array) -> pa.Array:
    """The first two digits; "ukjent" (a number no map covers) stays "ukjent"."""
    return pc.if_else(pc.equal(values, UNKNOWN), values, pc.utf8_slice_codeunits(values, 0, 2))


def kommune(values: pa.Array) -> pa.Array:
    return fold_bydeler(values)


def month(values: pa.Array) -> pa.Array:
    keys = pc.add(pc.multiply(pc.cast(pc.year(values), pa.int32()), 100), pc.cast(pc.month(values), pa.int32()))
    return _labelled(keys, month_label)


def year(values: pa.Array) -> pa.Array:
    return pc.cast(pc.year(values), pa.int16())


def date(values: pa.Array) -> pa.Array:
    return pc.cast(values, pa.date32())


def _labelled(keys: pa.Array, label: Callable[[int], str]) -> pa.Array:
    """Text labels for integer keys, made once per distinct key (a few hundred at most), not per row:
    Arrow's string kernels (strftime above all) cost far more per row than a dictionary lookup."""
    if isinstance(keys, pa.ChunkedArray):
        keys = keys.combine_chunks()
    encoded = pc.dictionary_encode(keys)
    labels = pa.array([label(key) for key in encoded.dictionary.to_pylist()], pa.string())
    return labels.take(encoded.indices)


def _same(values: pa.Array) -> pa.Array:
    return values


# An expectation as (GX expectation type, its keyword arguments but the column), for the period.
Rule = Callable[[Date, Date], tuple[str, dict[str, Any]] | None]


def _within_days(start: Date, end: Date) -> tuple[str, dict[str, Any]]:
    return "expect_column_values_to_be_between", {
        "min_value": datetime.combine(start, time.min).isoformat(),
        "max_value": datetime.combine(end, time.max).isoformat(),
    }


@dataclass(frozen=True)
class Generalisation:
    """One way of delivering a variable: how values are made, what they must look like, in words."""

    apply: Callable[[pa.Array], pa.Array]
    text: str
    expectation: Rule = lambda start, end: None  # None: the catalogue's own domain applies
    geographic: bool = False  # reads kommune numbers: harmonised first under a geography map


GENERALISATIONS: dict[str, Generalisation] = {
    "exact": Generalisation(_same, "as in the source"),
    "timestamp": Generalisation(_same, "date and time as in the source", _within_days),
    "group5": Generalisation(
        lambda v: age_group(v, 5),
        '5-year age groups "00-04" … "85-89", "90+"',
        lambda start, end: ("expect_column_values_to_be_in_set", {"value_set": age_labels(5)}),
    ),
    "group10": Generalisation(
        lambda v: age_group(v, 10),
        '10-year age groups "00-09" … "80-89", "90+"',
        lambda start, end: ("expect_column_values_to_be_in_set", {"value_set": age_labels(10)}),
    ),
    "kommune": Generalisation(kommune, "kommune number (bydel codes folded into their kommune)", geographic=True),
    "fylke": Generalisation(
        fylke,
        "fylke: the first two digits of the kommune number",
        lambda start, end: ("expect_column_values_to_match_regex", {"regex": r"^[0-9]{2}$"}),
        geographic=True,
    ),
    "month": Generalisation(
        month,
        'year and month "YYYY-MM"',
        lambda start, end: ("expect_column_values_to_be_in_set", {"value_set": month_labels(start, end)}),
    ),
    "year": Generalisation(
        year,
        "year (integer)",
        lambda start, end: ("expect_column_values_to_be_between", {"min_value": start.year, "max_value": end.year}),
    ),
    "date": Generalisation(date, "date (no time of day)", _within_days),
}


def generalise(values: pa.Array, how: str, years: pa.Array | None = None, map_year: int | None = None) -> pa.Array:
    """`values` generalised as `how`; kommune numbers first put on the map of `map_year` when given
    (`years`: each value's claim year)."""
    generalisation = GENERALISATIONS[how]
    if map_year is not None and generalisation.geographic:
        if years is None:
            raise ValueError(f"{how} on the map of {map_year} needs each value's year")
        values = kommune_lists().harmonise(values, years, map_year)
    return generalisation.apply(values)


def mapped_expectation(how: str, map_year: int) -> tuple[str, dict[str, Any]]:
    """What a harmonised kommune or fylke column holds: a kommune (fylke) of the map, or "ukjent"."""
    lists = kommune_lists()
    values = lists.kommuner_in(map_year) if how == "kommune" else lists.fylker_in(map_year)
    return "expect_column_values_to_be_in_set", {"value_set": [*sorted(values), UNKNOWN]}
