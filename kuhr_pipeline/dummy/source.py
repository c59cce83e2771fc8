"""A synthetic source made from a spec: dummy persons who each meet the cohort's rules.

Each person gets entry claims drawn from the entry criteria (codes, practice types, fee codes and
status as the spec lists them; a prefix `X*` completed from the code lists of `synth/codes.py`)
and other claims drawn from those lists; the cohort's own matcher (`cohort/criteria.match`) then
keeps only entry claims that no exclusion matches, and other claims that match neither, so no
person is admitted or excluded by accident. Age, sex and bostedskommune on the first entry claim
(the index claim) are drawn inside the spec's rules; claims lie in the period, none before it
(so washout and windows never drop anyone). Claims other than the index claim leave some
nullable fields empty, as the register does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from kuhr_pipeline.application.model import CODE_SYSTEMS, ApplicationSpec, Criteria
from kuhr_pipeline.catalogue.kommuner import kommune_lists
from kuhr_pipeline.cohort.criteria import codes_match, match
from kuhr_pipeline.errors import SpecRefused
from kuhr_pipeline.source.schema import PARTITION_COLUMN, SOURCE_SCHEMA
from kuhr_pipeline.synth import codes
from kuhr_pipeline.synth.kommuner import numbers_in
from kuhr_pipeline.synth.population import make_ids

OLDEST = 105  # an age range open to 150 draws dummy ages up to this
CANDIDATES_PER_CLAIM = 4  # drawn per wanted claim; the matcher keeps those that fit
NULL_SHARE = 0.1  # of the claims other than the index claim, per nullable field
_TYPES = {t[0]: t for t in codes.PRACTICE_TYPES}
_CODES = {"ICPC-2": [c for c, _, _ in codes.ICPC_CODES], "ICD-10": [c for c, _, _ in codes.ICD_CODES]}
_FEES = sorted(codes.REFUSJON)
_REJECTIONS = [reason for reason, _ in codes.REJECTION_REASONS]


@dataclass(frozen=True)
class DummySource:
    path: Path
    persons: int  # every one of them meets the cohort's rules
    claims: int


def write_dummy_source(
    spec: ApplicationSpec, spec_file: str, out: Path, persons: int, seed: int, today: date
) -> DummySource:
    """`persons` dummy persons (fewer only when the spec's exclusion matches what its entry
    admits) and their claims in `period`, up to yesterday, as a source in the source contract."""
    rng = np.random.default_rng(seed)
    first, last = spec.period.from_, min(spec.period.to, today - timedelta(days=1))
    if last < first:
        raise SpecRefused.single(
            spec_file, "period.from", f"{first} is not yet past: a dummy has no day to date claims on", "start earlier"
        )
    drawn = [_person(rng, spec, first, last) for _ in range(persons)]
    people = [p for p in drawn if p is not None]
    if not people:
        raise SpecRefused.single(
            spec_file,
            "cohort.exclude",
            "matches every claim the entry criteria admit: no dummy person can meet the rules",
            "narrow cohort.exclude or widen cohort.entry",
        )
    table = _as_source(rng, people)
    _write_years(table, out, range(first.year, last.year + 1))
    return DummySource(out, len(people), table.num_rows)


@dataclass
class _Person:
    sex: int
    birth: date
    kommune: str
    claims: list[dict[str, object]]  # the index claim first


def _person(rng: np.random.Generator, spec: ApplicationSpec, first: date, last: date) -> _Person | None:
    cohort = spec.cohort
    wanted = cohort.min_entry_claims + int(rng.integers(0, 3))
    entries = _fitting(rng, cohort.entry, wanted, entry=cohort.entry, exclude=cohort.exclude, want_entry=True)
    if len(entries) < cohort.min_entry_claims:
        return None
    others = _fitting(rng, None, int(rng.integers(0, 6)), entry=cohort.entry, exclude=cohort.exclude, want_entry=False)
    days = sorted(_day(rng, first, last) for _ in entries)
    low, high = (cohort.age.min, min(cohort.age.max, OLDEST)) if cohort.age else (0, 90)
    birth = _birth(rng, days[0], int(rng.integers(low, max(low, high) + 1)))
    for claim, day in zip(entries, days, strict=True):
        claim["day"] = day
    for claim in others:  # none before birth
        claim["day"] = _day(rng, max(first, birth), last)
    sex = int(rng.choice(cohort.sex or [1, 2]))
    kommune = _kommune(rng, cohort.bostedskommuner, days[0].year, spec.map_year)
    return _Person(sex, birth, kommune, entries + others)


def _day(rng: np.random.Generator, first: date, last: date) -> date:
    return first + timedelta(days=int(rng.integers(0, (last - first).days + 1)))


def _birth(rng: np.random.Generator, index: date, age: int) -> date:
    """A birth date that makes the person `age` on `index`."""
    year = index.year - age
    anniversary = index.replace(year=year) if not (index.month == 2 and index.day == 29) else date(year, 2, 28)
    return anniversary - timedelta(days=int(rng.integers(0, 365)))


def _age(birth: date, day: date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def _kommune(rng: np.random.Generator, patterns: list[str] | None, year: int, map_year: int | None) -> str:
    """A home kommune of `year` the patterns select: as recorded, or (under a map) a number of that
    year whose kommune on the map they select."""
    if map_year is None:
        known = [str(n) for n in numbers_in(year)]
        return _completed(rng, str(rng.choice(patterns)), known) if patterns else str(rng.choice(known))
    lists = kommune_lists()
    recorded = sorted(lists.kommuner_in(year))
    if patterns:
        on_map = pa.array([lists.covering(code, year, map_year) for code in recorded])
        fitting = [code for code, keep in zip(recorded, codes_match(on_map, patterns), strict=True) if keep]
        recorded = fitting or recorded
    return str(rng.choice(recorded))


def _completed(rng: np.random.Generator, pattern: str, known: list[str], width: int = 4) -> str:
    """An exact code as it is; a prefix `X*` completed from the known codes, else with digits."""
    if not pattern.endswith("*"):
        return pattern
    prefix = pattern[:-1]
    fitting = [k for k in known if k.startswith(prefix)]
    if fitting:
        return str(rng.choice(fitting))
    return prefix + "".join(str(d) for d in rng.integers(0, 10, max(1, width - len(prefix))))


def _fitting(
    rng: np.random.Generator,
    drawn_from: Criteria | None,
    wanted: int,
    *,
    entry: Criteria,
    exclude: Criteria | None,
    want_entry: bool,
) -> list[dict[str, object]]:
    """Up to `wanted` claims drawn from `drawn_from` (None: the code lists) that the cohort's own
    matcher finds to be entry claims (or not, as asked) and no exclusion claim."""
    candidates = [_claim(rng, drawn_from) for _ in range(wanted * CANDIDATES_PER_CLAIM)]
    if not candidates:
        return []
    table = pa.table(
        {
            "diagnosekoder": pa.array([c["diagnosekoder"] for c in candidates], pa.list_(pa.string())),
            "diagnosekodeverk": pa.array([c["diagnosekodeverk"] for c in candidates], pa.string()),
            "behandler_praksistype": [c["behandler_praksistype"] for c in candidates],
            "takstkoder": pa.array([c["takstkoder"] for c in candidates], pa.list_(pa.string())),
            "regning_status": [c["regning_status"] for c in candidates],
        }
    )
    fits = match(table, entry) == want_entry
    if exclude is not None:
        fits &= ~match(table, exclude)
    return [candidates[i] for i in np.flatnonzero(fits)[:wanted]]


def _claim(rng: np.random.Generator, criteria: Criteria | None) -> dict[str, object]:
    """A claim's coded fields, drawn from the criteria's lists where they give one."""
    given = criteria.given if criteria else {}
    practice = _completed(rng, str(rng.choice(given.get("praksistyper") or list(_TYPES))), list(_TYPES))
    system = _TYPES[practice][1] if practice in _TYPES else None
    by_system = criteria.diagnoses_by_system if criteria else None
    diagnoses: list[str] = []
    if by_system:
        system = str(rng.choice(sorted(by_system)))
        diagnoses = [_completed(rng, str(rng.choice(by_system[system])), _CODES[system])]
    elif "diagnoses" in given:
        code = _completed(rng, str(rng.choice(given["diagnoses"])), _CODES["ICPC-2"] + _CODES["ICD-10"])
        system = system or ("ICPC-2" if len(code) == 3 else "ICD-10")
        diagnoses = [code]
    elif system is not None:
        diagnoses = [str(rng.choice(_CODES[system]))]
    fee = _completed(rng, str(rng.choice(given.get("takster") or _FEES)), _FEES, width=3)
    status = str(rng.choice(given.get("regning_status") or ["godkjent"] * 49 + ["avvist"]))
    assert system is None or system in CODE_SYSTEMS
    return {
        "behandler_praksistype": practice,
        "diagnosekodeverk": system,
        "diagnosekoder": diagnoses,
        "takstkoder": [fee],
        "regning_status": status,
    }


def _as_source(rng: np.random.Generator, people: list[_Person]) -> pa.Table:
    """The claims of every person as one table of the source contract (without `ar`)."""
    sexes = np.array([p.sex for p in people])
    births = np.array([p.birth for p in people], dtype="datetime64[D]")
    ids = make_ids(rng, births, sexes)
    rows: list[dict[str, object]] = []
    for person, fnr in zip(people, ids, strict=True):
        for n, claim in enumerate(person.claims):
            rows.append(_row(rng, person, f"{int(fnr):011d}", claim, index_claim=n == 0))
    for n, row in enumerate(rows):
        row["regning_id"] = f"DUMMY{n:09d}"
    return pa.Table.from_pylist(rows, schema=SOURCE_SCHEMA)


def _row(
    rng: np.random.Generator, person: _Person, fnr: str, claim: dict[str, object], *, index_claim: bool
) -> dict[str, object]:
    day = claim["day"]
    assert isinstance(day, date)
    when = datetime(day.year, day.month, day.day, int(rng.integers(8, 20)), int(rng.integers(0, 60)))
    age = _age(person.birth, day)

    def maybe(value: object) -> object:  # the index claim carries what the rules look at
        return None if not index_claim and rng.random() < NULL_SHARE else value

    practice = str(claim["behandler_praksistype"])
    free = "B" if age < 16 else maybe("F") if rng.random() < 0.1 else None
    fees = [str(f) for f in claim["takstkoder"]]  # type: ignore[attr-defined]
    rejected = claim["regning_status"] == "avvist"
    return {
        "pasient_fnr": fnr,
        "pasient_kjonn": person.sex,
        "pasient_fodselsar": maybe(person.birth.year),
        "pasient_alder": maybe(age),
        "pasient_bostedskommune": maybe(person.kommune),
        "behandler_id": f"{int(rng.integers(1_000_000, 1_000_050))}",
        "behandler_praksistype": practice,
        "behandler_spesialitet": maybe(_TYPES[practice][2]) if practice in _TYPES else None,
        "behandler_praksiskommune": person.kommune,
        "behandlingstidspunkt": when,
        "takstkoder": fees,
        "diagnosekodeverk": claim["diagnosekodeverk"],
        "diagnosekoder": claim["diagnosekoder"],
        "fritaksgrunn": free,
        "egenandel": 0.0 if free else codes.egenandel_for(day.year)[0],
        "refusjon": 0.0 if rejected else float(sum(codes.REFUSJON.get(f, 100.0) for f in fees)),
        "regning_status": claim["regning_status"],
        "avvisningsgrunn": str(rng.choice(_REJECTIONS)) if rejected else None,
    }


def _write_years(table: pa.Table, out: Path, years: range) -> None:
    """One file per year in `ar=YYYY/` (empty when no one had a claim that year: a missing year
    would be a gap), sorted by time as the register exports."""
    year_of = np.array([t.year for t in table.column("behandlingstidspunkt").to_pylist()])
    for year in years:
        folder = out / f"{PARTITION_COLUMN}={year}"
        folder.mkdir(parents=True, exist_ok=True)
        part = table.filter(pa.array(year_of == year)).sort_by("behandlingstidspunkt")
        pq.write_table(part, folder / "part-0.parquet")
