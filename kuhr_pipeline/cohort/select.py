"""Cohort selection in two streaming passes over the source, with person-level attrition.

Pass 1 reads only the columns the criteria need and finds the cohort: each person's entry
claims (count, and the first one: earliest `behandlingstidspunkt`, ties by smallest `regning_id`
as text), their exclusion claims, and everyone with a valid id in the period. It gives each
person a label (person_labels.py) and writes each claim's label to a file (row_labels.py). Pass 2
reads the columns the delivery needs, with those labels in place of the national ids, and keeps
the cohort's claims with their pseudonyms.

Raw ids live only in pass 1's local variables and in the label table, as int64 numbers; what
this module returns and writes holds labels and pseudonyms only.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kuhr_pipeline.application.model import ApplicationSpec
from kuhr_pipeline.cohort.attrition import Attrition
from kuhr_pipeline.cohort.criteria import codes_match, columns_for, match, match_each
from kuhr_pipeline.cohort.first_claims import (
    break_ties,
    entry_claims,
    first_claim_columns,
    no_entry_claims,
    reduce_entry,
)
from kuhr_pipeline.cohort.person_labels import NO_PERSON, LabelSet, PersonLabels, claim_labels
from kuhr_pipeline.cohort.row_labels import FINGERPRINT_COLUMN, RowLabels, RowLabelsWriter
from kuhr_pipeline.cohort.windows import IndexDateEvidence, Progress, days_of
from kuhr_pipeline.disclosure.masking import count_rounding, small_count_threshold
from kuhr_pipeline.faults import fault_point
from kuhr_pipeline.identity.fodselsnummer import IdReason
from kuhr_pipeline.identity.pseudonym import Pseudonymiser
from kuhr_pipeline.reducing import Reducing
from kuhr_pipeline.source.integrity import CLAIM_ID, DuplicateClaims
from kuhr_pipeline.source.scan import Source, decoded, scan, scan_pieces
from kuhr_pipeline.source.schema import CODE_COLUMNS
from kuhr_pipeline.staging import StagedWriter, Staging


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
    """Pass 1's result. `numbers` are the cohort's raw national ids as numbers (in the order of
    `labels`): in memory only, used to pseudonymise, never returned by an asset."""

    labels: np.ndarray  # sorted
    numbers: np.ndarray
    index_days: np.ndarray  # each cohort person's index date (day number), in the order of `labels`
    persons_in_period: int
    row_labels: RowLabels
    attrition: Attrition
    first_claim_ages: np.ndarray


class _FirstPass:
    """Pass 1's running state, fed batch by batch: each claim's person label (written for pass 2),
    the claims dropped per identity reason, each person's earliest entry claims, the exclusions."""

    def __init__(self, spec: ApplicationSpec, evidence: IndexDateEvidence, writer: RowLabelsWriter) -> None:
        self.criteria = spec.cohort
        self.first_columns = first_claim_columns(spec.cohort)
        self.columns = sorted(
            {
                "pasient_fnr",
                FINGERPRINT_COLUMN,
                *self.first_columns,
                *columns_for(spec.cohort.entry),
                *columns_for(spec.cohort.exclude),
            }
        )
        self.coded = CODE_COLUMNS.intersection(self.columns)  # read as dictionaries
        self.persons = PersonLabels()
        self.excluded = LabelSet()
        self.evidence = evidence
        self.firsts = Reducing(reduce_entry)  # per person with an entry claim: the earliest (tied ones too)
        self.dropped = np.zeros(len(IdReason), dtype=np.int64)
        self.writer = writer
        self.row_in_piece, self.last_piece = 0, -1

    def take(self, piece: int, batch: pa.RecordBatch) -> None:
        if piece != self.last_piece:
            self.row_in_piece, self.last_piece = 0, piece
        labels, per_reason = claim_labels(batch.column("pasient_fnr"), self.persons, add=True)
        self.dropped += per_reason
        self.writer.write(batch, labels)
        entries, exclusions = match_each(batch, [self.criteria.entry, self.criteria.exclude])
        entry = np.flatnonzero(entries & (labels != NO_PERSON))
        if len(entry):
            claims = entry_claims(batch, entry, labels[entry], piece, self.row_in_piece, self.first_columns)
            self.firsts.add(reduce_entry(claims))
        self.row_in_piece += batch.num_rows
        if self.criteria.exclude is not None:
            hit = np.flatnonzero(exclusions & (labels != NO_PERSON))
            if self.evidence.window is not None:
                self.evidence.add_exclusions(labels[hit], days_of(batch.column("behandlingstidspunkt").take(hit)))
            else:
                self.excluded.add(labels[hit])


def find_cohort(
    source: Source,
    spec: ApplicationSpec,
    row_labels_path: Path,
    on_progress: Progress | None = None,
) -> FoundCohort:
    """Pass 1: the cohort, the attrition counts and ages; each claim's person label to `row_labels_path`.
    The margins a window reaches beyond the period are scanned alongside, on a thread."""
    period = (spec.period.from_, spec.period.to)
    evidence = IndexDateEvidence(spec)
    state = _FirstPass(spec, evidence, RowLabelsWriter(row_labels_path))
    stop_margins = threading.Event()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kuhr-margins") as alongside:
        margins = (
            alongside.submit(evidence.scan_margins, source, stop_margins, on_progress) if evidence.needed else None
        )
        try:
            for piece, batch in scan_pieces(source, state.columns, period, as_dictionary=state.coded):
                state.take(piece, batch)
                fault_point("in-pass-1")
                if on_progress:
                    on_progress("pass 1: finding the cohort", batch.num_rows)
        except BaseException:
            stop_margins.set()
            state.writer.discard()
            raise
        row_labels = state.writer.close()
        if margins is not None:
            margins.result()
            evidence.resolve_margins(state.persons)

    first_entry_claims = break_ties(state.firsts.result(no_entry_claims(state.first_columns)), source, period)
    cohort, ages, index_days, steps = _apply_person_criteria(first_entry_claims, state.excluded, evidence)
    steps.insert(0, ("persons with a claim in the period", len(state.persons)))
    dropped_claims: dict[IdReason, int] = {r: int(state.dropped[r]) for r in IdReason if r != IdReason.VALID}
    return FoundCohort(
        labels=cohort,
        numbers=state.persons.numbers(cohort),
        index_days=index_days,
        persons_in_period=len(state.persons),
        row_labels=row_labels,
        attrition=Attrition(steps, dropped_claims, small_count_threshold(spec), count_rounding(spec)),
        first_claim_ages=ages,
    )


def _apply_person_criteria(
    firsts: pa.Table, excluded: LabelSet, evidence: IndexDateEvidence
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[tuple[str, int]]]:
    """The person-level rules on each person's first entry claim, in the contract's order: the
    cohort's labels (sorted), their ages and index days, and the attrition after each step."""
    cohort_spec = evidence.spec.cohort
    persons = firsts.column("person").to_numpy()
    ages = pc.fill_null(firsts.column("pasient_alder"), -1).to_numpy()
    index_days = days_of(firsts.column("behandlingstidspunkt"))
    keep = firsts.column("entry_claims").to_numpy() >= cohort_spec.min_entry_claims
    steps = [
        ("with an entry claim", len(persons)),
        (f"with at least {cohort_spec.min_entry_claims} entry claims", int(keep.sum())),
    ]
    if cohort_spec.washout_days:
        keep &= ~evidence.washed_out(persons, index_days)
        steps.append(("after washout", int(keep.sum())))
    if cohort_spec.age is not None:
        keep &= (ages >= cohort_spec.age.min) & (ages <= cohort_spec.age.max)
    steps.append(("after age", int(keep.sum())))
    if cohort_spec.sex is not None:
        keep &= np.isin(firsts.column("pasient_kjonn").to_numpy(), cohort_spec.sex)
    steps.append(("after sex", int(keep.sum())))
    if cohort_spec.bostedskommuner is not None:
        keep &= codes_match(firsts.column("pasient_bostedskommune").combine_chunks(), cohort_spec.bostedskommuner)
    steps.append(("after kommune", int(keep.sum())))
    if evidence.window is not None:
        keep &= ~evidence.excluded_in_window(persons, index_days)
    else:
        keep &= ~excluded.contains(persons)
    steps.append(("after exclusion (the cohort)", int(keep.sum())))
    order = np.argsort(persons[keep])
    return persons[keep][order], ages[keep][order], index_days[keep][order], steps


def collect_claims(
    source: Source,
    spec: ApplicationSpec,
    cohort: FoundCohort,
    columns: list[str],
    patients: Pseudonymiser,
    practitioners: Pseudonymiser | None,
    staging: Staging,
    out: Path,
    on_progress: Progress | None = None,
) -> tuple[int, dict[int, int]]:
    """Pass 2: write the cohort's claims (`columns` plus pseudonyms) to `out`, sealed.

    Returns the rows written and the claims per month (YYYYMM → count).

    Claims are matched to the cohort by pass 1's person labels; `pasient_fnr` is never read and
    `behandler_id` never written (it becomes `behandler_pseudonym` when asked for).
    """
    cohort_pseudonyms = patients.fnr_numbers(cohort.numbers)
    position_of_label = np.full(cohort.persons_in_period + 1, -1, dtype=np.int32)
    position_of_label[cohort.labels] = np.arange(len(cohort.labels), dtype=np.int32)
    entry_only = spec.claims == "entry"
    wanted = [c for c in columns if c not in ("pasient_fnr", "behandler_id")]
    months: dict[int, int] = {}
    criteria = columns_for(spec.cohort.entry) if entry_only else set()
    extra = ["behandler_id"] if practitioners else []
    read = sorted({FINGERPRINT_COLUMN, "behandlingstidspunkt", CLAIM_ID, *wanted, *extra, *criteria})
    duplicates = DuplicateClaims()
    codes = CODE_COLUMNS.intersection(read)  # matched on their dictionaries, decoded only for the rows kept
    practitioner_cache: dict[str, str] = {}
    writer: StagedWriter | None = None
    rows = 0
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        batches = scan(source, read, (spec.period.from_, spec.period.to), as_dictionary=codes, as_bytes=[CLAIM_ID])
        for batch, labels in cohort.row_labels.along(batches, source.path):
            position = position_of_label[labels]
            keep = position >= 0
            duplicates.add(batch.column(CLAIM_ID).filter(pa.array(keep)))
            if entry_only:
                keep &= match(batch, spec.cohort.entry)
            if spec.claims_window is not None:
                keep &= _inside_claims_window(batch, position, cohort.index_days, spec)
            if not keep.any():
                if on_progress:
                    on_progress("pass 2: collecting claims", batch.num_rows)
                continue
            kept = batch.filter(pa.array(keep))  # a mask: half the cost of taking the same rows by index
            table = {"pasient_pseudonym": cohort_pseudonyms.take(pa.array(position[keep]))}
            if practitioners is not None:
                table["behandler_pseudonym"] = _practitioner_pseudonyms(
                    kept.column("behandler_id"), practitioners, practitioner_cache
                )
            table.update({c: decoded(kept.column(c)) for c in wanted})
            part = pa.table(table)
            if writer is None:
                writer = staging.arrow_writer(tmp, part.schema)
            writer.write(part)
            rows += part.num_rows
            _count_months(months, kept.column("behandlingstidspunkt"))
            if on_progress:
                on_progress("pass 2: collecting claims", batch.num_rows)
        duplicates.refuse(source.dataset)
        if writer is None:
            writer = staging.arrow_writer(tmp, _empty_schema(source, wanted, practitioners is not None))
        writer.close()
        writer = None
        tmp.replace(out)
    finally:
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)
    return rows, months


def _count_months(months: dict[int, int], stamps: pa.Array) -> None:
    """Add the claims per month (YYYYMM → count) of these timestamps."""
    month_keys = pc.add(pc.multiply(pc.year(stamps), 100), pc.month(stamps)).to_numpy()
    for key, count in zip(*np.unique(month_keys, return_counts=True), strict=True):
        months[int(key)] = months.get(int(key), 0) + int(count)


def _inside_claims_window(
    batch: pa.RecordBatch, position: np.ndarray, index_days: np.ndarray, spec: ApplicationSpec
) -> np.ndarray:
    """Claims dated in [index date − before, index date + after] of their person (the scan keeps
    them inside the period)."""
    window = spec.claims_window
    assert window is not None
    inside = np.zeros(len(position), dtype=bool)
    ours = position >= 0
    days = days_of(batch.column("behandlingstidspunkt"))[ours]
    index = index_days[position[ours]].astype(np.int64)
    inside[ours] = (days >= index - window.before) & (days <= index + window.after)
    return inside


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
