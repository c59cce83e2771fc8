"""Kommune numbers over the municipal reforms: which numbers were kommuner on 1 January of each
year, and the kommune of one map year that covers a number recorded in another.

The lists are SSB's classification 131 and its change lists, shipped as data in `kommuner/` (how
they were made and how to update them: `kommuner/README.md`). A number is followed change by
change from its year to the map year: forwards, merges and renumberings have one successor and a
divided kommune goes to the successor that received most of its people (or, for a number recorded
before the merger, to the successor that restored it: Haram); backwards, a number
follows its one predecessor, and a kommune made by a merger after the map year has no single
kommune on that map (`mergers_after` names them, so a spec can be refused before a run).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

KOMMUNE_LISTS_DATE = "2025-01-02"  # the change list's end date (kommuner/README.md)
UNKNOWN_KOMMUNE = "ukjent"  # a number that is no kommune in its year, under a geography map

# bydel ranges → kommune (KUHR receives bydel codes; kuhr-facts.md): a bydel is finer than a kommune
BYDELER = [(312, 335, "0301"), (1161, 1165, "1103"), (1202, 1210, "1201"), (1603, 1607, "1601")]


def fold_bydeler(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Bydel codes replaced by their kommune's number; every other value as it is. Worked out on
    the distinct values (a few hundred), then taken back to the rows."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    encoded = pc.dictionary_encode(values)
    return _folded(encoded.dictionary).take(encoded.indices)


def _folded(values: pa.Array) -> pa.Array:
    numbers = pc.cast(pc.if_else(pc.match_substring_regex(values, r"^[0-9]{4}$"), values, None), pa.int32())
    out = values
    for low, high, target in BYDELER:
        inside = pc.and_(pc.greater_equal(numbers, low), pc.less_equal(numbers, high))
        out = pc.if_else(pc.fill_null(inside, False), pa.scalar(target), out)
    return out


@dataclass(frozen=True)
class Division:
    """A kommune divided between several successors: its people are counted in `largest`."""

    year: int
    code: str
    name: str
    largest: str
    others: tuple[str, ...]


@dataclass(frozen=True)
class KommuneLists:
    names: dict[str, str]
    years: dict[str, tuple[int, int]]  # code → (first, last) year it was a kommune on 1 January
    successors: dict[tuple[int, str], tuple[str, ...]]  # (year of change, old) → new, largest part first
    predecessors: dict[tuple[int, str], tuple[str, ...]]  # (year of change, new) → old
    restored: dict[tuple[int, str], str]  # (year of change, successor) → the older number it restores
    first_year: int
    last_year: int
    answers: dict[tuple[str, int, int], str] = field(default_factory=dict, compare=False, repr=False)

    def _listed_year(self, year: int) -> int:
        """Years after the last list keep its numbers until the data are updated."""
        return min(year, self.last_year)

    def kommuner_in(self, year: int) -> frozenset[str]:
        listed = self._listed_year(year)
        return frozenset(code for code, (first, last) in self.years.items() if first <= listed <= last)

    def fylker_in(self, year: int) -> frozenset[str]:
        return frozenset(code[:2] for code in self.kommuner_in(year))

    def is_kommune(self, code: str, year: int) -> bool:
        span = self.years.get(code)
        return span is not None and span[0] <= self._listed_year(year) <= span[1]

    def covering(self, code: str, year: int, map_year: int) -> str | None:
        """The kommune of `map_year` that covers `code` as recorded in `year`; None when `code` was
        no kommune in `year`, or (backwards over a merger) no single kommune covers it."""
        year, map_year = self._listed_year(year), self._listed_year(map_year)
        if not self.is_kommune(code, year):
            return None
        recorded = code
        for change in range(year + 1, map_year + 1):
            news = self.successors.get((change, code), (code,))
            code = next((new for new in news if self.restored.get((change, new)) == recorded), news[0])
        for change in range(year, map_year, -1):
            before = self.predecessors.get((change, code), (code,))
            if len(before) != 1:
                return None
            code = before[0]
        return code

    def mergers_after(self, map_year: int, until: int) -> list[tuple[int, str]]:
        """(year, kommune) of each merger after `map_year` up to `until`: numbers a map of
        `map_year` cannot place."""
        return sorted(
            (year, new)
            for (year, new), olds in self.predecessors.items()
            if map_year < year <= min(until, self.last_year) and len(olds) > 1
        )

    def divisions(self) -> list[Division]:
        return [
            Division(year, old, self.names[old], news[0], news[1:])
            for (year, old), news in sorted(self.successors.items())
            if len(news) > 1
        ]

    def years_not_a_kommune(self, code: str, first: int, last: int) -> list[int]:
        """The years of `first`–`last` in which `code` was no kommune."""
        return [year for year in range(first, last + 1) if not self.is_kommune(code, year)]

    def harmonise(
        self, codes: pa.Array | pa.ChunkedArray, years: pa.Array | pa.ChunkedArray, map_year: int
    ) -> pa.Array:
        """Each (code, year) as the kommune of `map_year` covering it (bydeler folded first), or
        UNKNOWN_KOMMUNE; nulls stay null. Answered once per distinct code and year (a table of a
        few hundred codes by the batch's years, remembered across batches), then taken per row."""
        if isinstance(codes, pa.ChunkedArray):
            codes = codes.combine_chunks()
        encoded = pc.dictionary_encode(codes)
        dictionary = _folded(encoded.dictionary).to_pylist()
        if not dictionary:  # no rows, or nulls only
            return codes.cast(pa.string())
        year = pc.cast(years, pa.int64())
        low, high = (int(v) for v in pc.min_max(year).values())
        span = high - low + 1
        table = pa.array(
            [self._answer(code, y, map_year) for code in dictionary for y in range(low, high + 1)], pa.string()
        )
        index = pc.fill_null(encoded.indices, 0).to_numpy(zero_copy_only=False).astype(np.int64)
        offset = pc.fill_null(year, low).to_numpy(zero_copy_only=False) - low
        out = table.take(pa.array(index * span + offset))
        return pc.if_else(pc.is_null(codes), pa.scalar(None, pa.string()), out)

    def _answer(self, code: str, year: int, map_year: int) -> str:
        key = (code, year, map_year)
        if key not in self.answers:
            self.answers[key] = self.covering(code, year, map_year) or UNKNOWN_KOMMUNE
        return self.answers[key]


def _rows(name: str) -> list[dict[str, str]]:
    text = (files(__package__) / "kommuner" / name).read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines()))


@cache
def kommune_lists() -> KommuneLists:
    """The shipped lists, read once per process."""
    return load_kommune_lists()


def load_kommune_lists() -> KommuneLists:
    names, years = {}, {}
    for row in _rows("kommuner.csv"):
        names[row["code"]] = row["name"]
        years[row["code"]] = (int(row["first_year"]), int(row["last_year"]))
    successors: dict[tuple[int, str], list[str]] = {}
    predecessors: dict[tuple[int, str], list[str]] = {}
    for row in _rows("changes.csv"):
        year, old, new = int(row["year"]), row["old_code"], row["new_code"]
        news = successors.setdefault((year, old), [])
        news.insert(0, new) if row["largest_part"] == "yes" else news.append(new)
        predecessors.setdefault((year, new), []).append(old)
    restored = {(int(row["year"]), row["code"]): row["restores"] for row in _rows("restored.csv")}
    return KommuneLists(
        names=names,
        years=years,
        successors={key: tuple(value) for key, value in successors.items()},
        predecessors={key: tuple(value) for key, value in predecessors.items()},
        restored=restored,
        first_year=min(first for first, _ in years.values()),
        last_year=max(last for _, last in years.values()),
    )
