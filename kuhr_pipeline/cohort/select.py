"""Cohort selection in two streaming passes over the source, with person-level attrition.

Each pass reads the period one scan group at a time (groups.py: the whole period, or one group
per year, each its own step on a worker of its own), and one step between them merges the groups.

Pass 1 (`first_pass`, per group) reads only the columns the criteria need: each person's entry
claims (count, and the first one: earliest `behandlingstidspunkt`, ties by smallest `regning_id`
as text), their exclusion claims, and everyone with a valid id. It gives each person a label
(person_labels.py) and writes each claim's label to a file (row_labels.py), and the labels' ids
as numbers to a sealed file. `find_cohort_in` merges the groups into the cohort (a sealed file
of its persons' numbers and index dates). Pass 2 (`second_pass`, per group) reads the columns the
delivery needs, with the labels in place of the national ids, and keeps the cohort's claims with
their pseudonyms; `gather_claims` puts the groups' claims together in scan order.

Raw ids live only in the passes' memory and, as int64 numbers, in sealed staging; what this
module returns holds paths, counts and pseudonyms only (it is a step's output).
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kuhr_pipeline.application.model import ApplicationSpec
from kuhr_pipeline.catalogue.kommuner import kommune_lists
from kuhr_pipeline.cohort.attrition import Attrition
from kuhr_pipeline.cohort.criteria import codes_match, columns_for, match, match_each
from kuhr_pipeline.cohort.first_claims import (
    break_ties,
    entry_claims,
    first_claim_columns,
    merge_groups,
    no_entry_claims,
    reduce_entry,
)
from kuhr_pipeline.cohort.groups import ScanGroup
from kuhr_pipeline.cohort.person_labels import NO_PERSON, PersonLabels, claim_labels, positions_among
from kuhr_pipeline.cohort.row_labels import FINGERPRINT_COLUMN, RowLabels, RowLabelsWriter
from kuhr_pipeline.cohort.windows import IndexDateEvidence, IndexDateRules, Progress, days_of
from kuhr_pipeline.disclosure.masking import count_rounding, small_count_threshold
from kuhr_pipeline.extract.generalise import age_label
from kuhr_pipeline.faults import fault_point
from kuhr_pipeline.identity.fodselsnummer import IdReason
from kuhr_pipeline.identity.population import Population
from kuhr_pipeline.identity.pseudonym import PatientPseudonyms, Pseudonymiser
from kuhr_pipeline.reducing import Reducing
from kuhr_pipeline.source.scan import Source, decoded, scan, scan_pieces
from kuhr_pipeline.source.schema import CODE_COLUMNS
from kuhr_pipeline.staging import StagedWriter, Staging

PASSES = "passes"  # the staging sub-folder of the groups' files, removed when the claims are gathered
_NUMBERS = pa.schema([("number", pa.int64())])
_COHORT = pa.schema([("number", pa.int64()), ("index_day", pa.int32())])


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
class GroupFound:
    """Pass 1's result for one scan group: counts, and its files in staging."""

    group: ScanGroup
    row_labels: RowLabels
    persons: Path  # sealed: the ids (numbers) of labels 1, 2, 3 … in order
    firsts: Path  # sealed: each person's first entry claim in the group, by number
    exclusions: Path  # sealed: (number, day) of exclusion claims
    prior_entries: Path  # sealed: (number, latest day) of entry claims in the washout before the period
    dropped: tuple[int, ...]  # claims per IdReason


@dataclass(frozen=True)
class FoundCohort:
    """The cohort, merged from every group's pass 1: its persons' numbers and index dates in a
    sealed file (sorted by number), the attrition, and its persons per 10-year age group at their
    first entry claim (counts: this object is a step's output, kept in the clear)."""

    path: Path
    persons: int
    persons_in_period: int
    attrition: Attrition
    persons_per_age_group: dict[str, int]

    def numbers(self, staging: Staging) -> np.ndarray:
        """The cohort's ids as numbers (sorted): in memory only, to pseudonymise."""
        return staging.read(self.path).column("number").to_numpy()


@dataclass(frozen=True)
class GroupClaims:
    """Pass 2's result for one scan group: its claims, sealed, and the claims per month."""

    group: ScanGroup
    path: Path
    rows: int
    months: dict[int, int]


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
            days = days_of(batch.column("behandlingstidspunkt").take(hit)) if self.evidence.window else None
            self.evidence.add_exclusions(self.persons.numbers(labels[hit]), days)


def first_pass(
    source: Source, spec: ApplicationSpec, group: ScanGroup, staging: Staging, on_progress: Progress | None = None
) -> GroupFound:
    """Pass 1 over one scan group: its persons, entry claims and evidence, sealed in staging; each
    claim's label to a file for pass 2. The group that reads the margins the windows reach beyond
    the period scans them alongside, on a thread."""
    folder = staging.sub(PASSES)
    evidence = IndexDateEvidence(spec)
    state = _FirstPass(spec, evidence, RowLabelsWriter(folder.path(f"{group.name}.labels")))
    stop_margins = threading.Event()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kuhr-margins") as alongside:
        margins = (
            alongside.submit(evidence.scan_margins, source, stop_margins, on_progress)
            if group.margins and evidence.needed
            else None
        )
        try:
            for piece, batch in scan_pieces(source, state.columns, group.period, as_dictionary=state.coded):
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

    firsts = break_ties(state.firsts.result(no_entry_claims(state.first_columns)), source, group.period)
    labels = firsts.column("person").to_numpy()
    firsts = firsts.set_column(0, "person", pa.array(state.persons.numbers(labels), pa.int64()))
    numbers = pa.table({"number": state.persons.numbers(np.arange(1, len(state.persons) + 1))}, schema=_NUMBERS)
    files = {
        "persons": numbers,
        "firsts": firsts,
        "exclusions": evidence.exclusions(),
        "prior_entries": evidence.prior_entries(),
    }
    paths = {name: _write_sealed(staging, folder.path(f"{group.name}.{name}.arrow"), t) for name, t in files.items()}
    return GroupFound(group, row_labels, **paths, dropped=tuple(int(n) for n in state.dropped))


def _write_sealed(staging: Staging, path: Path, table: pa.Table) -> Path:
    writer = staging.arrow_writer(path, table.schema)
    try:
        writer.write(table)
    finally:
        writer.close()
    return path


Members = Callable[[str, np.ndarray], None]  # an attrition step's name and its persons (id numbers)


def find_cohort_in(
    spec: ApplicationSpec,
    groups: list[GroupFound],
    staging: Staging,
    on_members: Members | None = None,
    population: Population | None = None,
) -> FoundCohort:
    """Merge the groups' pass 1 into the cohort: its persons (sealed), the attrition, their ages.
    `on_members` (estimates: their cell keys) is handed each attrition step's persons, in memory
    only, as the step is counted. With a `population`, only its persons can be in the cohort, and
    the attrition starts with the population file's own counts."""
    groups = sorted(groups, key=lambda found: found.group.index)
    firsts = merge_groups([staging.read(g.firsts) for g in groups])
    if population is not None:
        firsts = firsts.filter(pa.array(population.listed(firsts.column("person").to_numpy())))
    rules = IndexDateRules(
        spec,
        pa.concat_tables([staging.read(g.exclusions) for g in groups]),
        pa.concat_tables([staging.read(g.prior_entries) for g in groups]),
    )
    in_period = "persons with a claim in the period" if population is None else LISTED_IN_PERIOD
    in_period_persons = _persons_in_period(groups, staging)
    if population is not None:
        in_period_persons = in_period_persons[population.listed(in_period_persons)]
    if on_members is not None:
        on_members(in_period, in_period_persons)
    cohort, ages, index_days, steps = _apply_person_criteria(firsts, rules, on_members)
    persons_in_period = len(in_period_persons)
    steps.insert(0, (in_period, persons_in_period))
    if population is not None:
        steps[:0] = [(IN_POPULATION_FILE, population.rows), (POPULATION_ROWS_NOT_USED, population.not_used)]
    dropped = np.sum([g.dropped for g in groups], axis=0)
    dropped_claims: dict[IdReason, int] = {r: int(dropped[r]) for r in IdReason if r != IdReason.VALID}
    path = _write_sealed(
        staging, staging.sub(PASSES).path("cohort.arrow"), pa.table([cohort, index_days], schema=_COHORT)
    )
    return FoundCohort(
        path=path,
        persons=len(cohort),
        persons_in_period=persons_in_period,
        attrition=Attrition(steps, dropped_claims, small_count_threshold(spec), count_rounding(spec)),
        persons_per_age_group=_age_groups(ages),
    )


def _age_groups(ages: np.ndarray) -> dict[str, int]:
    """Persons per 10-year age group at their first entry claim (UNKNOWN where the age is missing)."""
    groups: dict[str, int] = {}
    for age in ages.tolist():
        label = age_label(age, 10)
        groups[label] = groups.get(label, 0) + 1
    return dict(sorted(groups.items()))


# The attrition's first steps when the spec gives a population (application-spec.md, "Linkage")
IN_POPULATION_FILE = "persons in the population file"
POPULATION_ROWS_NOT_USED = "population rows not used (invalid or duplicate)"
LISTED_IN_PERIOD = "listed persons with a claim in the period"


def _persons_in_period(groups: list[GroupFound], staging: Staging) -> np.ndarray:
    return np.unique(np.concatenate([staging.read(g.persons).column("number").to_numpy() for g in groups]))


def _apply_person_criteria(
    firsts: pa.Table, rules: IndexDateRules, on_members: Members | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[tuple[str, int]]]:
    """The person-level rules on each person's first entry claim (sorted by person), in the
    contract's order: the cohort's numbers (sorted), their ages and index days, and the
    attrition after each step."""
    cohort_spec = rules.spec.cohort
    persons = firsts.column("person").to_numpy()
    ages = pc.fill_null(firsts.column("pasient_alder"), -1).to_numpy()
    index_days = days_of(firsts.column("behandlingstidspunkt"))
    steps: list[tuple[str, int]] = []

    def step(name: str, keep: np.ndarray) -> None:
        steps.append((name, int(keep.sum())))
        if on_members is not None:
            on_members(name, persons[keep])

    step("with an entry claim", np.ones(len(persons), dtype=bool))
    keep = firsts.column("entry_claims").to_numpy() >= cohort_spec.min_entry_claims
    step(f"with at least {cohort_spec.min_entry_claims} entry claims", keep)
    if cohort_spec.washout_days:
        keep &= ~rules.washed_out(persons, index_days)
        step("after washout", keep)
    if cohort_spec.age is not None:
        keep &= (ages >= cohort_spec.age.min) & (ages <= cohort_spec.age.max)
    step("after age", keep)
    if cohort_spec.sex is not None:
        keep &= np.isin(firsts.column("pasient_kjonn").to_numpy(), cohort_spec.sex)
    step("after sex", keep)
    if cohort_spec.bostedskommuner is not None:
        keep &= codes_match(_home_kommuner(firsts, rules.spec.map_year), cohort_spec.bostedskommuner)
    step("after kommune", keep)
    if cohort_spec.exclude is not None:
        keep &= ~rules.excluded(persons, index_days)
    step("after exclusion (the cohort)", keep)
    return persons[keep], ages[keep], index_days[keep], steps


def _home_kommuner(firsts: pa.Table, map_year: int | None) -> pa.Array:
    """The index claims' home kommuner as the patterns read them: as recorded, or on the map."""
    recorded = firsts.column("pasient_bostedskommune").combine_chunks()
    if map_year is None:
        return recorded
    years = pc.year(firsts.column("behandlingstidspunkt"))
    return kommune_lists().harmonise(recorded, years, map_year)


def second_pass(
    source: Source,
    spec: ApplicationSpec,
    cohort: FoundCohort,
    found: GroupFound,
    patients: PatientPseudonyms,
    practitioners: Pseudonymiser | None,
    staging: Staging,
    on_progress: Progress | None = None,
) -> GroupClaims:
    """Pass 2 over one scan group: its claims of the cohort (the plan's source columns plus
    pseudonyms), sealed in staging, and the claims per month (YYYYMM → count).

    Claims are matched to the cohort by pass 1's person labels; `pasient_fnr` is never read and
    `behandler_id` never written (it becomes `behandler_pseudonym` when asked for)."""
    persons = _GroupCohort(staging, cohort, found, patients)
    entry_only = spec.claims == "entry"
    wanted = [c for c in spec.plan.source_columns if c not in ("pasient_fnr", "behandler_id")]
    months: dict[int, int] = {}
    criteria = columns_for(spec.cohort.entry) if entry_only else set()
    extra = ["behandler_id"] if practitioners else []
    read = sorted({FINGERPRINT_COLUMN, "behandlingstidspunkt", *wanted, *extra, *criteria})
    codes = CODE_COLUMNS.intersection(read)  # matched on their dictionaries, decoded only for the rows kept
    practitioner_cache: dict[str, str] = {}
    out = staging.sub(PASSES).path(f"{found.group.name}.claims.arrow")
    writer: StagedWriter | None = None
    rows = 0
    try:
        batches = scan(source, read, found.group.period, as_dictionary=codes)
        for batch, labels in found.row_labels.along(batches, source.path):
            if on_progress:
                on_progress("pass 2: collecting claims", batch.num_rows)
            position = persons.position_of_label[labels]
            ours = position >= 0
            if not ours.any():
                continue
            # The cohort's claims first (a mask: half the cost of taking the same rows by index),
            # then the rest of the rules on those few rows only.
            kept, position = batch.filter(pa.array(ours)), position[ours]
            keep = np.ones(kept.num_rows, dtype=bool)
            if entry_only:
                keep &= match(kept, spec.cohort.entry)
            if spec.claims_window is not None:
                keep &= _inside_claims_window(kept, position, persons.index_days, spec)
            if not keep.all():
                kept, position = kept.filter(pa.array(keep)), position[keep]
            table = {"pasient_pseudonym": persons.pseudonyms.take(pa.array(position))}
            if practitioners is not None:
                table["behandler_pseudonym"] = _practitioner_pseudonyms(
                    kept.column("behandler_id"), practitioners, practitioner_cache
                )
            table.update({c: decoded(kept.column(c)) for c in wanted})
            part = pa.table(table)
            if writer is None:
                writer = staging.arrow_writer(out, part.schema)
            writer.write(part)
            rows += part.num_rows
            _count_months(months, kept.column("behandlingstidspunkt"))
        if writer is None:
            writer = staging.arrow_writer(out, _empty_schema(source, wanted, practitioners is not None))
    finally:
        if writer is not None:
            writer.close()
    return GroupClaims(found.group, out, rows, months)


class _GroupCohort:
    """The cohort as one group's pass 2 sees it: per label of the group, the place of its person
    among the group's cohort persons (−1: not in the cohort), their pseudonyms and index days.
    Only the cohort's persons that this group met are pseudonymised."""

    def __init__(self, staging: Staging, cohort: FoundCohort, found: GroupFound, patients: PatientPseudonyms) -> None:
        merged = staging.read(cohort.path)
        numbers = merged.column("number").to_numpy()
        group_numbers = staging.read(found.persons).column("number").to_numpy()  # label − 1 → id
        at, known = positions_among(numbers, group_numbers)
        self.position_of_label = np.full(len(group_numbers) + 1, -1, dtype=np.int32)
        self.position_of_label[1:][known] = np.arange(int(known.sum()), dtype=np.int32)
        self.pseudonyms = patients.fnr_numbers(group_numbers[known])
        self.index_days = merged.column("index_day").to_numpy()[at[known]]


def gather_claims(parts: list[GroupClaims], staging: Staging, out: Path) -> tuple[int, dict[int, int]]:
    """The groups' claims, one after the other (the whole period's scan order), to `out`; the
    rows and the claims per month. The groups' files are removed."""
    parts = sorted(parts, key=lambda part: part.group.index)
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        if len(parts) == 1:
            parts[0].path.replace(tmp)
        else:
            schema = next((staging.schema(p.path) for p in parts if p.rows), staging.schema(parts[0].path))
            writer = staging.arrow_writer(tmp, schema)
            try:
                for part in parts:
                    for batch in staging.batches(part.path) if part.rows else ():
                        writer.write(batch)
            finally:
                writer.close()
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    shutil.rmtree(staging.folder / PASSES, ignore_errors=True)
    months: dict[int, int] = {}
    for part in parts:
        for key, count in part.months.items():
            months[key] = months.get(key, 0) + count
    return sum(p.rows for p in parts), dict(sorted(months.items()))


def _count_months(months: dict[int, int], stamps: pa.Array) -> None:
    """Add the claims per month (YYYYMM → count) of these timestamps."""
    month_keys = pc.add(pc.multiply(pc.year(stamps), 100), pc.month(stamps)).to_numpy()
    for key, count in zip(*np.unique(month_keys, return_counts=True), strict=True):
        months[int(key)] = months.get(int(key), 0) + int(count)


def _inside_claims_window(
    claims: pa.RecordBatch, position: np.ndarray, index_days: np.ndarray, spec: ApplicationSpec
) -> np.ndarray:
    """Claims of the cohort (`position`: each one's person among the group's cohort) dated in
    [index date − before, index date + after] of their person (the scan keeps them inside the period)."""
    window = spec.claims_window
    assert window is not None
    days = days_of(claims.column("behandlingstidspunkt"))
    index = index_days[position].astype(np.int64)
    return (days >= index - window.before) & (days <= index + window.after)


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
