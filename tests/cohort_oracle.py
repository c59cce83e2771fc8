"""A reference cohort, written from the application contract's text over plain rows, without the
package's code: which persons are in the cohort, and which of their claims are delivered.

Rows are dicts with `person` (an int; None for a claim without a usable id), `day` (a date),
`seconds` (time of day), `regning_id`, `codes`, `system`, `status`, `age`. A spec is a dict with
`from`, `to`, `entry` (codes: a list, or a {system: codes} mapping), `entry_status`, `min_entry`,
`washout`, `exclude`, `exclude_window` (before, after) and `claims_window` (before, after).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any


def _code_matches(code: str, patterns: list[str]) -> bool:
    return any(code.startswith(p[:-1]) if p.endswith("*") else code == p for p in patterns)


def _diagnoses_match(row: dict[str, Any], diagnoses: list[str] | dict[str, list[str]]) -> bool:
    if isinstance(diagnoses, dict):  # tied to the claim's own code system
        patterns = diagnoses.get(row["system"])
        return patterns is not None and any(_code_matches(c, patterns) for c in row["codes"])
    return any(_code_matches(c, diagnoses) for c in row["codes"])


def is_entry(row: dict[str, Any], spec: dict[str, Any]) -> bool:
    if not _diagnoses_match(row, spec["entry"]):
        return False
    return spec.get("entry_status") is None or row["status"] in spec["entry_status"]


def is_exclusion(row: dict[str, Any], spec: dict[str, Any]) -> bool:
    return spec.get("exclude") is not None and _diagnoses_match(row, spec["exclude"])


def cohort(rows: list[dict[str, Any]], spec: dict[str, Any]) -> tuple[set[int], set[str]]:
    """The cohort's persons and the `regning_id`s of the claims delivered to the researcher."""
    valid = [r for r in rows if r["person"] is not None]
    in_period = [r for r in valid if spec["from"] <= r["day"] <= spec["to"]]
    persons = set()
    index_of: dict[int, Any] = {}
    for person in {r["person"] for r in in_period}:
        entries = [r for r in in_period if r["person"] == person and is_entry(r, spec)]
        if len(entries) < spec.get("min_entry", 1):
            continue
        index = min(entries, key=lambda r: (r["day"], r["seconds"], r["regning_id"]))
        index_day = index["day"]
        washout = spec.get("washout")
        if washout and any(
            r["person"] == person and is_entry(r, spec) and index_day - timedelta(days=washout) <= r["day"] < index_day
            for r in valid
        ):
            continue
        low, high = spec.get("age", (0, 150))
        if index["age"] is None or not low <= index["age"] <= high:
            continue
        window = spec.get("exclude_window")
        if window is None:
            excluded = any(r["person"] == person and is_exclusion(r, spec) for r in in_period)
        else:
            before, after = window
            excluded = any(
                r["person"] == person
                and is_exclusion(r, spec)
                and index_day - timedelta(days=before) <= r["day"] <= index_day + timedelta(days=after)
                for r in valid
            )
        if excluded:
            continue
        persons.add(person)
        index_of[person] = index_day
    delivered = set()
    for r in in_period:
        if r["person"] not in persons:
            continue
        claims_window = spec.get("claims_window")
        if claims_window is not None:
            before, after = claims_window
            index_day = index_of[r["person"]]
            if not index_day - timedelta(days=before) <= r["day"] <= index_day + timedelta(days=after):
                continue
        delivered.add(r["regning_id"])
    return persons, delivered
