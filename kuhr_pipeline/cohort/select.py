"""Cohort selection in two streaming passes over the source, with person-level attrition.

Pass 1 reads only the columns the criteria need and finds the cohort: each person's entry
claims (count, and the first one: earliest `behandlingstidspunkt`, ties by smallest `regning_id`
as text), their exclusion claims, and everyone with a valid id in the period. Pass 2 reads the
columns the delivery needs and keeps the cohort's claims, replacing the national id with its
pseudonym before anything leaves the scan.

Raw ids live only in this module's local variables, as int64 numbers; what it returns and what
it writes hold pseudonyms only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kuhr_pipeline.cohort.attrition import Attrition
from kuhr_pipeline.cohort.criteria import codes_match, columns_for, match
from kuhr_pipeline.identity.fodselsnummer import IdReason, check_ids, positions_in, summarise_ids
from kuhr_pipeline.identity.pseudonym import Pseudonymiser
from kuhr_pipeline.reducing import Reducing
from kuhr_pipeline.source.scan import Source, decoded, scan
from kuhr_pipeline.source.schema import CODE_COLUMNS
from kuhr_pipeline.spec.model import ApplicationSpec, CohortSpec
from kuhr_pipeline.staged_parquet import StagedParquetWriter

Progress = Callable[[str, int], None]
_COMPACT_BATCHES = 16  # batches of ids deduplicated together before they join the sorted array
_FIRSTS_SCHEMA = pa.schema(
    [
        ("person", pa.int64()),
        ("behandlingstidspunkt", pa.timestamp("ms")),
        ("regning_id", pa.string()),
        ("pasient_alder", pa.int16()),
        ("pasient_kjonn", pa.int8()),
        ("pasient_bostedskommune", pa.string()),
        ("entry_claims", pa.int64()),
    ]
)


def _first_claim_columns(cohort_spec: CohortSpec) -> list[str]:
    """What is kept of each person's first entry claim: the age always (the cohort's age picture),
    sex and residence only when a criterion asks (two columns fewer to decode in pass 1)."""
    return [
        "pasient_alder",
        *(["pasient_kjonn"] if cohort_spec.sex is not None else []),
        *(["pasient_bostedskommune"] if cohort_spec.bostedskommuner is not None else []),
    ]


@dataclass(frozen=True)
class CohortProfile:
    """A picture of the cohort for the data manager: counts only, small ones masked."""

    persons_per_age_group: dict[str, str]
    claims_per_month: dict[str, str]


@dataclass(frozen=True)
class CohortClaims:
    """What pass 2 wrote: the cohort's claims with pseudonyms instead of ids."""

    path: Path
    rows: int
    persons: int
    attrition: Attrition
    profile: CohortProfile


@dataclass(frozen=True)
class FoundCohort:
    """Pass 1's result. `ids` are raw national ids as numbers: in memory only, never returned by an asset."""

    ids: np.ndarray
    attrition: Attrition
    first_claim_ages: np.ndarray


def _reduce_entry(table: pa.Table) -> pa.Table:
    """One row per person: entry-claim count and the values of the first entry claim."""
    if table.num_rows == 0:
        return table
    table = table.sort_by([("person", "ascending"), ("behandlingstidspunkt", "ascending"), ("regning_id", "ascending")])
    person = table.column("person").to_numpy()
    first = np.r_[True, person[1:] != person[:-1]]
    starts = np.flatnonzero(first)
    counts = np.add.reduceat(table.column("entry_claims").to_numpy(), starts)
    reduced = table.take(pa.array(starts))
    return reduced.set_column(reduced.schema.get_field_index("entry_claims"), "entry_claims", pa.array(counts))


@dataclass(frozen=True)
class _ValidRows:
    rows: np.ndarray  # row positions in the batch
    numbers: np.ndarray  # their ids as numbers

    def __len__(self) -> int:
        return len(self.rows)


def _valid_rows(ids: pa.Array | pa.ChunkedArray, wanted: np.ndarray) -> _ValidRows:
    """The wanted rows whose id is valid, with the ids as numbers (only these rows are checked)."""
    rows = np.flatnonzero(wanted)
    if not len(rows):
        return _ValidRows(rows, np.zeros(0, dtype=np.int64))
    checked = check_ids(ids.take(pa.array(rows)))
    return _ValidRows(rows[checked.valid], checked.number[checked.valid])


class _DistinctIds:
    """Ids collected over many batches, each once, as one sorted array (memory: one int64 per id).

    Batches are deduplicated a group at a time (a hash over the group only) and merged into the
    sorted array by a linear merge: a hash over everything seen so far cost a few hundred MB at
    each merge on a 40-million-bill source."""

    def __init__(self) -> None:
        self._seen = np.zeros(0, dtype=np.int64)
        self._pending: list[np.ndarray] = []

    def add(self, ids: np.ndarray) -> None:
        self._pending.append(ids)
        if len(self._pending) >= _COMPACT_BATCHES:
            self._merge()

    def sorted(self) -> np.ndarray:
        self._merge()
        return self._seen

    def _merge(self) -> None:
        if not self._pending:
            return
        new = np.sort(_distinct(self._pending))
        both = np.sort(np.concatenate([self._seen, new]), kind="stable")  # timsort: two sorted runs
        self._seen = both[np.r_[True, both[1:] != both[:-1]]] if len(both) else both
        self._pending = []


def _distinct(chunks: list[np.ndarray]) -> np.ndarray:
    """Each id once (Arrow's hash-based unique: several times faster than numpy's on millions of ids)."""
    if not chunks:
        return np.zeros(0, dtype=np.int64)
    return pc.unique(pa.chunked_array([pa.array(c, pa.int64()) for c in chunks])).to_numpy()


def find_cohort(
    source: Source, spec: ApplicationSpec, threshold: int = 5, on_progress: Progress | None = None
) -> FoundCohort:
    """Pass 1: the cohort's ids (sorted int64, in memory only), the attrition counts, and ages."""
    cohort_spec = spec.cohort
    first_claim_columns = _first_claim_columns(cohort_spec)
    columns = sorted(
        {
            "pasient_fnr",
            "regning_id",
            "behandlingstidspunkt",
            *first_claim_columns,
            *columns_for(cohort_spec.entry),
            *columns_for(cohort_spec.exclude),
        }
    )
    in_period = _DistinctIds()
    excluded = _DistinctIds()
    firsts = Reducing(_reduce_entry)  # one row per person with an entry claim
    dropped = dict.fromkeys(IdReason, 0)
    for batch in scan(source, columns, (spec.period.from_, spec.period.to)):
        fnr = batch.column("pasient_fnr")
        summary = summarise_ids(fnr)
        for reason in IdReason:
            dropped[reason] += int(summary.rows_per_reason[reason])
        in_period.add(summary.distinct_valid)
        entry = _valid_rows(fnr, match(batch, cohort_spec.entry))
        if len(entry):
            rows = pa.array(entry.rows)
            part = pa.table(
                {
                    "person": pa.array(entry.numbers),
                    "behandlingstidspunkt": batch.column("behandlingstidspunkt").take(rows),
                    "regning_id": batch.column("regning_id").take(rows),
                    **{c: batch.column(c).take(rows) for c in first_claim_columns},
                    "entry_claims": pa.array(np.ones(len(entry), dtype=np.int64)),
                }
            )
            firsts.add(_reduce_entry(part))
        if cohort_spec.exclude is not None:
            excluding = _valid_rows(fnr, match(batch, cohort_spec.exclude))
            if len(excluding):
                excluded.add(excluding.numbers)
        if on_progress:
            on_progress("pass 1: finding the cohort", batch.num_rows)

    no_entries = _FIRSTS_SCHEMA.empty_table().select(
        ["person", "behandlingstidspunkt", "regning_id", *first_claim_columns, "entry_claims"]
    )
    dropped.pop(IdReason.VALID)
    cohort, ages, steps = _apply_person_criteria(firsts.result(no_entries), excluded.sorted(), cohort_spec)
    steps.insert(0, ("persons with a claim in the period", len(in_period.sorted())))
    return FoundCohort(cohort, Attrition(steps, dropped, threshold), ages)


def _apply_person_criteria(
    firsts: pa.Table, excluded: np.ndarray, cohort_spec: CohortSpec
) -> tuple[np.ndarray, np.ndarray, list[tuple[str, int]]]:
    """The person-level rules on each person's first entry claim, in the contract's order:
    the cohort's ids (sorted), their ages on that claim, and the attrition after each step."""
    persons = firsts.column("person").to_numpy()
    ages = pc.fill_null(firsts.column("pasient_alder"), -1).to_numpy()
    keep = firsts.column("entry_claims").to_numpy() >= cohort_spec.min_entry_claims
    steps = [
        ("with an entry claim", len(persons)),
        (f"with at least {cohort_spec.min_entry_claims} entry claims", int(keep.sum())),
    ]
    if cohort_spec.age is not None:
        keep &= (ages >= cohort_spec.age.min) & (ages <= cohort_spec.age.max)
    steps.append(("after age", int(keep.sum())))
    if cohort_spec.sex is not None:
        keep &= np.isin(firsts.column("pasient_kjonn").to_numpy(), cohort_spec.sex)
    steps.append(("after sex", int(keep.sum())))
    if cohort_spec.bostedskommuner is not None:
        keep &= codes_match(firsts.column("pasient_bostedskommune").combine_chunks(), cohort_spec.bostedskommuner)
    steps.append(("after kommune", int(keep.sum())))
    keep &= ~pc.is_in(pa.array(persons), value_set=pa.array(excluded, pa.int64())).to_numpy(zero_copy_only=False)
    steps.append(("after exclusion (the cohort)", int(keep.sum())))
    order = np.argsort(persons[keep])
    return persons[keep][order], ages[keep][order], steps


def collect_claims(
    source: Source,
    spec: ApplicationSpec,
    cohort: np.ndarray,
    columns: list[str],
    patients: Pseudonymiser,
    practitioners: Pseudonymiser | None,
    out: Path,
    on_progress: Progress | None = None,
) -> tuple[int, dict[int, int]]:
    """Pass 2: write the cohort's claims (`columns` plus pseudonyms) to `out`.

    Returns the rows written and the claims per month (YYYYMM → count).

    `pasient_fnr` and `behandler_id` are read but never written: they become
    `pasient_pseudonym` and (when asked for) `behandler_pseudonym`.
    """
    cohort_pseudonyms = patients.fnr_numbers(cohort)
    entry_only = spec.claims == "entry"
    wanted = [c for c in columns if c not in ("pasient_fnr", "behandler_id")]
    months: dict[int, int] = {}
    criteria = columns_for(spec.cohort.entry) if entry_only else set()
    read = sorted(
        {"pasient_fnr", "behandlingstidspunkt", *wanted, *(["behandler_id"] if practitioners else []), *criteria}
    )
    codes = CODE_COLUMNS.intersection(wanted) - criteria  # decoded only for the rows kept
    practitioner_cache: dict[str, str] = {}
    writer: StagedParquetWriter | None = None
    rows = 0
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        for batch in scan(source, read, (spec.period.from_, spec.period.to), as_dictionary=codes):
            position = positions_in(batch.column("pasient_fnr"), cohort)
            keep = position >= 0
            if entry_only:
                keep &= match(batch, spec.cohort.entry)
            if not keep.any():
                if on_progress:
                    on_progress("pass 2: collecting claims", batch.num_rows)
                continue
            take = pa.array(np.flatnonzero(keep))
            kept = batch.take(take)
            table = {"pasient_pseudonym": cohort_pseudonyms.take(pa.array(position[keep]))}
            if practitioners is not None:
                table["behandler_pseudonym"] = _practitioner_pseudonyms(
                    kept.column("behandler_id"), practitioners, practitioner_cache
                )
            table.update({c: decoded(kept.column(c)) for c in wanted})
            part = pa.table(table)
            if writer is None:
                writer = StagedParquetWriter(tmp, part.schema)
            writer.write(part)
            rows += part.num_rows
            stamps = kept.column("behandlingstidspunkt")
            month_keys = pc.add(pc.multiply(pc.year(stamps), 100), pc.month(stamps)).to_numpy()
            for key, count in zip(*np.unique(month_keys, return_counts=True), strict=True):
                months[int(key)] = months.get(int(key), 0) + int(count)
            if on_progress:
                on_progress("pass 2: collecting claims", batch.num_rows)
        if writer is None:
            writer = StagedParquetWriter(tmp, _empty_schema(source, wanted, practitioners is not None))
        writer.close()
        writer = None
        tmp.replace(out)
    finally:
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)
    return rows, months


def _practitioner_pseudonyms(ids: pa.Array, practitioners: Pseudonymiser, cache: dict[str, str]) -> pa.Array:
    """Pseudonyms of practitioner ids, hashing each distinct id once per run."""
    distinct = pc.unique(ids)
    values = distinct.to_pylist()
    missing = [v for v in values if v not in cache]
    cache.update(zip(missing, practitioners.many(missing), strict=True))
    mapped = pa.array([cache[v] for v in values], pa.string())
    return mapped.take(pc.index_in(ids, value_set=distinct))


def _empty_schema(source: Source, wanted: list[str], with_practitioner: bool) -> pa.Schema:
    fields = [pa.field("pasient_pseudonym", pa.string())]
    if with_practitioner:
        fields.append(pa.field("behandler_pseudonym", pa.string()))
    schema = source.dataset.schema
    fields += [schema.field(c) for c in wanted]
    return pa.schema(fields)
