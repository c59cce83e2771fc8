"""What a spec asks of the pipeline, resolved once against the catalogue: the delivered columns
(or the statistics' dimensions) with their generalisations, the source columns pass 2 reads, and
whether practitioner pseudonyms are needed. Every step reads `spec.plan`; nobody re-resolves."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kuhr_pipeline.catalogue import Variable, load_catalogue

if TYPE_CHECKING:
    from kuhr_pipeline.application.model import ApplicationSpec

YEAR_COLUMN = "ar"  # the source's year partition, kept with every claim for per-year files
PSEUDONYMS = ("pasient_pseudonym", "behandler_pseudonym")  # made by the pipeline, not read from the source
MEASURE_COLUMNS = ("egenandel", "refusjon")  # what the statistics' sums read


@dataclass(frozen=True)
class Column:
    """One delivered column (or statistics dimension): its variable and how it is generalised."""

    name: str
    how: str
    variable: Variable


@dataclass(frozen=True)
class Plan:
    person_level: bool
    columns: tuple[Column, ...]  # delivered columns in the spec's order, or the statistics' group_by
    source_columns: tuple[str, ...]
    practitioner_pseudonyms: bool
    map_year: int | None = None  # kommune and fylke on this year's map (spec `geography`); None: as recorded

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def pairs(self) -> list[tuple[str, str]]:
        """(name, generalisation) of each column."""
        return [(c.name, c.how) for c in self.columns]


def make_plan(spec: ApplicationSpec) -> Plan:
    catalogue = load_catalogue()
    person_level = spec.data_level == "pseudonymised"
    requests = spec.requested_variables() if person_level else spec.requested_group_by()
    columns = tuple(
        Column(r.name, r.as_ or catalogue.variable(r.name).generalisations[0], catalogue.variable(r.name))
        for r in requests
    )
    read = [c.name for c in columns if c.name not in PSEUDONYMS]
    extra = [YEAR_COLUMN, *([] if person_level else MEASURE_COLUMNS)]
    return Plan(
        person_level=person_level,
        columns=columns,
        source_columns=tuple(dict.fromkeys([*read, *extra])),
        practitioner_pseudonyms=any(c.name == "behandler_pseudonym" for c in columns),
        map_year=spec.map_year,
    )
