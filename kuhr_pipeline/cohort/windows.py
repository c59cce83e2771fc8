"""Rules around each person's index date: washout ("new cases") and the exclusion window.

The index date is the date of the person's index claim (first entry claim in the period), known
only when pass 1 has read the whole period. So pass 1 keeps the evidence, not the verdict:
- each (person, day) with an exclusion claim, deduplicated (the day is 0 without a window);
- alongside pass 1 (a thread of its own), a scan of the margins outside the period, only as far
  as the windows reach (year partitions outside them are never opened): entry claims in the
  `washout_days` before `period.from` (each person's latest), and exclusion claims in the
  window's reach before `period.from` and after `period.to`, only with a valid id.
Persons are their ids as numbers: evidence is gathered per scan group (possibly on different
machines, groups.py) and merged in one step, and a number is the one key every group shares. It
lives in memory and in sealed staging only. Days are whole calendar days of
`behandlingstidspunkt` (the register's local time).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import date, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kuhr_pipeline.application.model import ApplicationSpec
from kuhr_pipeline.cohort.criteria import columns_for, match_each
from kuhr_pipeline.cohort.person_labels import positions_among
from kuhr_pipeline.identity.fodselsnummer import IdReason, id_slots
from kuhr_pipeline.reducing import Reducing
from kuhr_pipeline.source.scan import Source, scan
from kuhr_pipeline.source.schema import CODE_COLUMNS

MS_PER_DAY = 86_400_000
NEVER = np.iinfo(np.int32).min // 2  # "no prior entry claim": farther back than any window
EVIDENCE = pa.schema([("number", pa.int64()), ("day", pa.int32())])  # ids as numbers: sealed staging only
Progress = Callable[[str, int], None]  # (stage, claims read): the passes' progress callback


def margins(spec: ApplicationSpec) -> tuple[int, int]:
    """Days read before `period.from` and after `period.to` for the windows (0, 0 without them)."""
    exclude = spec.cohort.exclude
    window = exclude.window if exclude is not None else None
    before = max(spec.cohort.washout_days or 0, window.before if window else 0)
    return before, window.after if window else 0


def reach(spec: ApplicationSpec) -> tuple[date, date]:
    """The first and last day the cohort reads: the period, widened by the windows."""
    before, after = margins(spec)
    return spec.period.from_ - timedelta(days=before), spec.period.to + timedelta(days=after)


def days_of(stamps: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Calendar day numbers (days since 1970-01-01) of timestamps; a missing one is NEVER."""
    ms = pc.fill_null(pc.cast(stamps, pa.timestamp("ms")).cast(pa.int64()), NEVER * MS_PER_DAY)
    return np.floor_divide(ms.to_numpy(zero_copy_only=False), MS_PER_DAY).astype(np.int32)


def _day_number(day: date) -> int:
    return (day - date(1970, 1, 1)).days


def latest_day(table: pa.Table) -> pa.Table:
    """Each number's latest day (a reduction that can be applied again to its output)."""
    latest = table.group_by("number").aggregate([("day", "max")])
    return pa.table({"number": latest.column("number"), "day": latest.column("day_max")}, schema=EVIDENCE)


def unique_days(table: pa.Table) -> pa.Table:
    return table.group_by(["number", "day"]).aggregate([]).select(["number", "day"]).cast(EVIDENCE)


class IndexDateEvidence:
    """What the washout and the exclusion window need, gathered by one scan group's pass 1 and,
    for the group that reads them, the margins."""

    def __init__(self, spec: ApplicationSpec) -> None:
        self.spec = spec
        exclude = spec.cohort.exclude
        self.window = exclude.window if exclude is not None else None
        self._exclusions = Reducing(unique_days)  # pass 1's (its thread only: Reducing is not thread-safe)
        self._margin_exclusions = Reducing(unique_days)  # the margin scan's thread's
        self._prior_entries = Reducing(latest_day)  # the margin scan's thread's

    @property
    def needed(self) -> bool:
        return bool(self.spec.cohort.washout_days) or self.window is not None

    def add_exclusions(self, numbers: np.ndarray, days: np.ndarray | None) -> None:
        """Pairs are deduplicated when they pile up (Reducing), not batch by batch: a batch holds
        few of them, and a group-by per batch cost more than the pairs. Without a window the
        day does not matter (None: 0)."""
        if len(numbers):
            day = days if days is not None else np.zeros(len(numbers), dtype=np.int32)
            self._exclusions.add(pa.table({"number": numbers, "day": day}, schema=EVIDENCE))

    def scan_margins(self, source: Source, stop: threading.Event, on_progress: Progress | None) -> None:
        """Read the days before and after the period that the windows reach, until `stop` is set.

        Runs alongside pass 1 (on a thread of its own); keeps the ids of the few claims that
        matter, as numbers, reduced as they pile up (each person's latest prior entry claim;
        distinct exclusion days)."""
        period = self.spec.period
        before, after = margins(self.spec)
        if before:
            start, end = period.from_ - timedelta(days=before), period.from_ - timedelta(days=1)
            self._scan_margin(source, start, end, stop, on_progress)
        if after:
            start, end = period.to + timedelta(days=1), period.to + timedelta(days=after)
            self._scan_margin(source, start, end, stop, on_progress)

    def _scan_margin(
        self, source: Source, start: date, end: date, stop: threading.Event, on_progress: Progress | None
    ) -> None:
        cohort = self.spec.cohort
        washout = cohort.washout_days if start < self.spec.period.from_ else None
        entry = cohort.entry if washout else None
        exclude = cohort.exclude if self.window is not None else None
        columns = sorted({"pasient_fnr", "behandlingstidspunkt", *columns_for(entry), *columns_for(exclude)})
        coded = {"pasient_fnr", *CODE_COLUMNS.intersection(columns)}
        first, last = _day_number(start), _day_number(end)
        for batch in scan(source, columns, (start, end), as_dictionary=coded, clip=False):
            if stop.is_set():
                return
            days = days_of(batch.column("behandlingstidspunkt"))
            inside = (days >= first) & (days <= last)  # the scan leaves the rows unclipped: cheaper
            if on_progress:
                on_progress("around the period: windows", int(inside.sum()))
            entries, exclusions = (hit & inside for hit in match_each(batch, [entry, exclude]))
            rows = np.flatnonzero(entries | exclusions)  # the few claims that matter: only their ids are read
            if not len(rows):
                continue
            slots = id_slots(pc.dictionary_decode(batch.column("pasient_fnr").take(pa.array(rows))))
            valid = slots.reason[slots.slot] == IdReason.VALID
            numbers = slots.number[slots.slot]
            days = days[rows]
            for found, kept in ((entries, self._prior_entries), (exclusions, self._margin_exclusions)):
                found = found[rows] & valid
                if found.any():
                    kept.add(pa.table({"number": numbers[found], "day": days[found]}, schema=EVIDENCE))

    def exclusions(self) -> pa.Table:
        """Distinct (number, day) of exclusion claims, in the period and the margins (call once
        the margin scan has ended)."""
        parts = [r.result(EVIDENCE.empty_table()) for r in (self._exclusions, self._margin_exclusions)]
        return unique_days(pa.concat_tables(parts))

    def prior_entries(self) -> pa.Table:
        """Each number's latest entry claim in the washout before the period (once the margin
        scan has ended)."""
        return self._prior_entries.result(EVIDENCE.empty_table())


class IndexDateRules:
    """The washout and the exclusion applied to candidates, from every scan group's evidence."""

    def __init__(self, spec: ApplicationSpec, exclusions: pa.Table, prior_entries: pa.Table) -> None:
        self.spec = spec
        exclude = spec.cohort.exclude
        self.window = exclude.window if exclude is not None else None
        self.exclusions = unique_days(exclusions)
        self.prior_entries = latest_day(prior_entries)

    def washed_out(self, persons: np.ndarray, index_days: np.ndarray) -> np.ndarray:
        """Per person (sorted numbers): an entry claim in [index date − washout_days, index date)."""
        washout = self.spec.cohort.washout_days
        if not washout:
            return np.zeros(len(persons), dtype=bool)
        latest = np.full(len(persons), NEVER, dtype=np.int32)
        at, known = positions_among(persons, self.prior_entries.column("number").to_numpy())
        latest[at[known]] = self.prior_entries.column("day").to_numpy()[known]
        return (latest >= index_days - washout) & (latest < index_days)

    def excluded(self, persons: np.ndarray, index_days: np.ndarray) -> np.ndarray:
        """Per person (sorted numbers): an exclusion claim, in [index date − before, index date +
        after] when the exclusion has a window."""
        hit = np.zeros(len(persons), dtype=bool)
        at, known = positions_among(persons, self.exclusions.column("number").to_numpy())
        if self.window is None:
            hit[at[known]] = True
            return hit
        day = self.exclusions.column("day").to_numpy()[known].astype(np.int64)
        index = index_days[at[known]].astype(np.int64)
        near = (day >= index - self.window.before) & (day <= index + self.window.after)
        hit[at[known][near]] = True
        return hit
