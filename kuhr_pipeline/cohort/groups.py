"""Scan groups: the parts of the period that pass 1 and pass 2 read one step each, so that a
delivery's passes can fan out over many workers (Dagster's dynamic outputs, `defs/assets.py`).

A group is whole years of the period (a year's `ar=YYYY/` folder, clipped to the period). A
source the pipeline delivers from has every claim dated in its folder's year (the source
contract; `Source.require_sound_period`), so groups never share a claim nor a timestamp: a
person's first entry claim is the earliest of the groups' first ones, with no tie between groups.
Read one after the other, the groups are the whole period's scan, row for row, in the same order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from kuhr_pipeline.application.model import ApplicationSpec


@dataclass(frozen=True)
class ScanGroup:
    """One part of the period; `margins`: this group also reads the days the windows reach
    beyond the period (one group does)."""

    index: int
    period: tuple[date, date]
    margins: bool

    @property
    def name(self) -> str:
        """A name for step mapping keys and staged file names: the years it covers."""
        first, last = self.period[0].year, self.period[1].year
        return f"ar_{first}" if first == last else f"ar_{first}_{last}"


def scan_groups(spec: ApplicationSpec, per_year: bool) -> list[ScanGroup]:
    """The whole period as one group, or one group per year of it."""
    start, end = spec.period.from_, spec.period.to
    if not per_year or start.year == end.year:
        return [ScanGroup(0, (start, end), margins=True)]
    return [
        ScanGroup(
            index,
            (max(start, date(year, 1, 1)), min(end, date(year, 12, 31))),
            margins=index == 0,
        )
        for index, year in enumerate(range(start.year, end.year + 1))
    ]
