"""A disclosure report for person-level extracts (report only; the data are not altered).

Quasi-identifiers are the catalogue's `quasi_identifier` variables present in the delivery,
except the pseudonyms and the time of contact (which differ per claim, not per person). Each
person is described by the combinations of those values on their claims; an equivalence class
is the set of persons sharing one combination. Reported: the smallest class, the number of
persons in some class smaller than 5, and the combination of quasi-identifiers that isolates the
most persons.
"""

from __future__ import annotations

import json
from itertools import combinations
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from kuhr_pipeline.catalogue import load_catalogue
from kuhr_pipeline.disclosure import DISCLOSURE_REPORT
from kuhr_pipeline.disclosure.masking import mask_count
from kuhr_pipeline.reducing import Reducing
from kuhr_pipeline.staging import Staging

SMALL_CLASS = 5
_NOT_PER_PERSON = {"pasient_pseudonym", "behandler_pseudonym", "behandlingstidspunkt"}


def quasi_identifiers(columns: list[str]) -> list[str]:
    catalogue = load_catalogue()
    return [c for c in columns if catalogue.variable(c).role == "quasi_identifier" and c not in _NOT_PER_PERSON]


def _small_class_persons(table: pa.Table, columns: list[str]) -> tuple[int, int]:
    """(smallest class size, persons in any class smaller than SMALL_CLASS) for these columns."""
    combos = (
        table.select(["pasient_pseudonym", *columns])
        .group_by(columns)
        .aggregate([("pasient_pseudonym", "count_distinct")])
    )
    sizes = combos.column("pasient_pseudonym_count_distinct")
    smallest = int(pc.min(sizes).as_py() or 0)
    small = combos.filter(pc.less(sizes, SMALL_CLASS))
    if small.num_rows == 0:
        return smallest, 0
    joined = table.select(["pasient_pseudonym", *columns]).join(small.select(columns), keys=columns, join_type="inner")
    return smallest, int(pc.count_distinct(joined.column("pasient_pseudonym")).as_py())


class EquivalenceClasses:
    """The report's input, gathered from the extract's tables as they are written: each distinct
    (person, quasi-identifiers) combination once.

    Everything the report counts is distinct persons per combination, so this loses nothing, and
    it holds about one row per person (a few where age group or residence changed) instead of
    every claim. Fed while the extract is encoded, it costs the delivery no second read."""

    def __init__(self, columns: list[str]) -> None:
        self.quasi_identifiers = quasi_identifiers(columns)
        self._per_person = "pasient_pseudonym" in columns and bool(self.quasi_identifiers)
        self._columns = ["pasient_pseudonym", *self.quasi_identifiers]
        self._distinct = Reducing(self._reduce)
        self._empty: pa.Table | None = None

    def add(self, table: pa.Table) -> None:
        if not self._per_person:
            return
        selected = table.select(self._columns)
        if self._empty is None:
            self._empty = selected.schema.empty_table()
        self._distinct.add(self._reduce(selected))

    def report(self) -> dict[str, Any]:
        qis = self.quasi_identifiers
        if not self._per_person or self._empty is None:
            return {"quasi_identifiers": qis, "note": "no person-level quasi-identifiers delivered"}
        table = self._distinct.result(self._empty)
        persons = int(pc.count_distinct(table.column("pasient_pseudonym")).as_py())
        smallest, at_risk = _small_class_persons(table, qis)
        worst: tuple[int, list[str]] = (-1, [])
        for size in range(1, len(qis) + 1):
            for subset in combinations(qis, size):
                _, n = _small_class_persons(table, list(subset))
                if n > worst[0]:
                    worst = (n, list(subset))
        return {
            "quasi_identifiers": qis,
            "persons": persons,
            "smallest_equivalence_class": smallest,
            f"persons_in_classes_smaller_than_{SMALL_CLASS}": at_risk,
            "most_identifying_combination": worst[1],
            "persons_isolated_by_that_combination": max(worst[0], 0),
        }

    def _reduce(self, table: pa.Table) -> pa.Table:
        return table.group_by(self._columns).aggregate([])


PERSONS_COUNTED_BY = {
    "hmac": "pasient_pseudonym (keyed pseudonyms of the linkage domain)",
    "lopenr": "pasient_pseudonym (the project's løpenumre from its population file)",
}


def write_disclosure_report(
    classes: EquivalenceClasses, staging: Staging, pseudonym_form: str = "hmac"
) -> dict[str, Any]:
    """Compute the report and keep it beside the staged extract (the delivery encrypts it); it says
    what a person is counted by (the pseudonym form)."""
    report = {**classes.report(), "persons_counted_by": PERSONS_COUNTED_BY[pseudonym_form]}
    staging.write_small(DISCLOSURE_REPORT, json.dumps(report, indent=2).encode("utf-8"))
    return report


KANON_COLUMNS = {"figure": "A figure of the disclosure report", "value": "Its value (small counts masked)"}


def shown(report: dict[str, Any], threshold: int) -> list[dict[str, str]]:
    """The report for people outside the delivery (run metadata), one row per figure, counts masked."""
    return [
        {"figure": k.replace("_", " "), "value": mask_count(v, threshold) if isinstance(v, int) else str(v)}
        for k, v in report.items()
    ]
