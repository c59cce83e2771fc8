"""One year of synthetic claims for a slice of the population, built column by column in numpy.

Choices (sources in docs/synthetic-data.md):
- Contacts per person and practice type are Poisson with an age-dependent rate (codes.PRACTICE_TYPES):
  about 3 fastlege consultations a year on average, more for small children and the old.
- Dates: uniform over the year; practice types other than legevakt avoid weekends; legevakt has
  most contacts in the evening, at night and at weekends. Respiratory and gastro codes are drawn
  three times as often in Dec–Feb and half as often in Jun–Aug.
- Code system by practice type (ICPC-2 for GP, legevakt, physio, chiro; ICD-10 for specialists,
  psychologists and poliklinikk; none for private lab/radiology). A second diagnosis on 15 %.
- Fee codes by practice type and time of day: 2ad day, 2ak evening, 2ae e-consultation (20 % of
  GP contacts), 11ad/11ak home visits, 1bd/1ad/1g simple contacts, 2cd time supplement.
- Co-payment: none under 16 (fritaksgrunn B); a few claims exempt for A/G/H; once a person's paid
  egenandel in the year reaches the ceiling, later claims are free with fritaksgrunn F.
- 2 % of claims avvist with HELFO's published reasons (no refund then).
- A configurable share of claims carry a bad id: missing, malformed or with bad check digits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kuhr_pipeline.source.schema import SOURCE_SCHEMA
from kuhr_pipeline.synth import codes, kommuner
from kuhr_pipeline.synth.population import Population

SECOND_DIAGNOSIS_SHARE = 0.15
AVVIST_SHARE = 0.02
OTHER_FRITAK_SHARE = 0.01
UNSPECIFIED_SEX_SHARE = 0.0005
OSLO_BYDEL_SHARE = 0.3
PRACTICE_ELSEWHERE_SHARE = 0.12

_TYPE_NAMES = [t[0] for t in codes.PRACTICE_TYPES]
_LEGEVAKT = {_TYPE_NAMES.index("LEVA"), _TYPE_NAMES.index("LEKO")}
_FRITAK = ["A", "B", "F", "G", "H"]
_GP = {_TYPE_NAMES.index(t) for t in ("FALE", "FALO")}

_ALL_CODES = [c for c, _, _ in codes.ICPC_CODES] + [c for c, _, _ in codes.ICD_CODES]
_CODE_ARRAY = pa.array(_ALL_CODES, pa.string())
_FEES = sorted(codes.REFUSJON)
_FEE_ARRAY = pa.array(_FEES, pa.string())
_FEE_INDEX = {f: i for i, f in enumerate(_FEES)}
_FEE_REFUND = np.array([codes.REFUSJON[f] for f in _FEES])


def _code_subset(practice: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Code indices, base weights and winter flags a practice type draws its diagnoses from."""
    icpc = practice in codes.ICPC_SYSTEM_TYPES
    table = codes.ICPC_CODES if icpc else codes.ICD_CODES
    offset = 0 if icpc else len(codes.ICPC_CODES)
    prefixes = {
        "FYNO": ("L",),
        "KINO": ("L",),
        "PSNO": ("F",),
        "SPPS": ("F",),
        "SPON": ("J", "H66"),
        "SPOL": ("H2", "H4", "H5"),
        "SPHU": ("L", "C44", "D22"),
        "SPIN": ("I", "E", "K"),
        "SPGY": ("N", "O", "Z"),
    }.get(practice, ("",))
    chosen = [i for i, (c, _, _) in enumerate(table) if c.startswith(prefixes)]
    weights = np.array([table[i][1] for i in chosen])
    if practice in ("LEVA", "LEKO"):  # legevakt: A29/A97/A99, infections and injuries dominate
        weights = weights * np.array([3.0 if table[i][0][0] in "ARSDL" else 0.5 for i in chosen])
    winter = np.array([table[i][2] for i in chosen])
    return np.array(chosen) + offset, weights, winter


_SUBSETS = [_code_subset(t) for t in _TYPE_NAMES]
_CODE_SYSTEM = [t[1] for t in codes.PRACTICE_TYPES]


_SEASON_OF_MONTH = np.array([-1, 0, 0, 2, 2, 2, 1, 1, 1, 2, 2, 2, 0])  # 0 winter, 1 summer, 2 other
_SEASON_FACTOR = (3.0, 0.5, 1.0)


def _draw_codes(rng: np.random.Generator, type_idx: np.ndarray, season: np.ndarray) -> np.ndarray:
    """One diagnosis code index per claim (−1 where the practice type codes none), drawn per
    (practice type, season) group: rows are grouped once by sorting, not masked per group."""
    out = np.full(len(type_idx), -1, dtype=np.int32)
    group = type_idx * len(_SEASON_FACTOR) + season
    order = np.argsort(group, kind="stable")
    bounds = np.searchsorted(group[order], np.arange(len(_SUBSETS) * len(_SEASON_FACTOR) + 1))
    for t, (chosen, weights, winter) in enumerate(_SUBSETS):
        if _CODE_SYSTEM[t] is None:
            continue
        for s, factor in enumerate(_SEASON_FACTOR):
            lo, hi = bounds[t * len(_SEASON_FACTOR) + s], bounds[t * len(_SEASON_FACTOR) + s + 1]
            if lo == hi:
                continue
            w = weights * np.where(winter, factor, 1.0)
            out[order[lo:hi]] = chosen[_categorical(rng, w, hi - lo)]
    return out


def _categorical(rng: np.random.Generator, weights: np.ndarray, n: int) -> np.ndarray:
    """n draws of 0 … len(weights) − 1 in proportion to weights: what rng.choice(p=…) does, minus
    its checks of p on every call (it is called once per small group in `_draw_codes`)."""
    cdf = np.cumsum(weights, dtype=np.float64)
    return np.searchsorted(cdf / cdf[-1], rng.random(n), side="right")


class _Calendar:
    """Month and month·100 + day of each day of a year, looked up by day of the year."""

    def __init__(self, year: int) -> None:
        days = np.arange(np.datetime64(f"{year}-01-01"), np.datetime64(f"{year + 1}-01-01"))
        self.month_day = _month_day(days)
        self.month = self.month_day // 100


def _month_day(dates: np.ndarray) -> np.ndarray:
    """month · 100 + day of the month, for comparing birthdays across years."""
    months = dates.astype("datetime64[M]")
    return (months.astype(np.int64) % 12 + 1) * 100 + (dates - months).astype(np.int64) + 1


def _list_array(first: np.ndarray, second: np.ndarray, values: pa.Array) -> pa.Array:
    """A list<string> column of one or two codes per row (−1 means absent) by index into `values`."""
    counts = (first >= 0).astype(np.int32) + (second >= 0).astype(np.int32)
    offsets = np.zeros(len(first) + 1, dtype=np.int32)
    np.cumsum(counts, out=offsets[1:])
    flat = np.stack([first, second], axis=1).ravel()
    flat = flat[flat >= 0]
    return pa.ListArray.from_arrays(pa.array(offsets), pc.take(values, pa.array(flat, pa.int32())))


def _id_text(numbers: np.ndarray) -> pa.Array:
    """Ids as 11-digit text (made once per person, then taken per claim)."""
    return pc.utf8_lpad(pc.cast(pa.array(numbers), pa.string()), 11, "0")


def _bad_ids(rng: np.random.Generator, text: pa.Array, share: float) -> pa.Array:
    """The id column with `share` of rows missing, malformed or with bad check digits.
    Only the damaged rows pass through Python."""
    mask = rng.random(len(text)) < share
    bad = np.flatnonzero(mask)
    if not len(bad):
        return text
    kind = rng.integers(0, 3, len(bad))
    damaged: list[str | None] = []
    for value, k in zip(text.take(pa.array(bad)).to_pylist(), kind.tolist(), strict=True):
        if k == 0:
            damaged.append(None)
        elif k == 1:
            damaged.append(value[: rng.integers(6, 11)] if rng.random() < 0.7 else value[:9] + "X1")
        else:
            damaged.append(value[:10] + str((int(value[-1]) + 1 + int(rng.integers(0, 9))) % 10))
    return pc.replace_with_mask(text, pa.array(mask), pa.array(damaged, pa.string()))


def make_year(
    rng: np.random.Generator,
    population: Population,
    persons: np.ndarray,
    year: int,
    first_regning: int,
    bad_id_share: float,
    pools: np.ndarray,
    by_time: bool = False,
) -> pa.Table:
    """All claims of `year` for the persons at index `persons` of the population. The steps draw from
    `rng` in a fixed order, so a seed always gives the same source. `by_time` gives the same rows
    sorted by time (a stable sort): the draws are made in the same order, then every column is put
    in time order while it is still numbers, which is far cheaper than sorting the strings after."""
    birth = population.birth_date[persons]
    birth_year = birth.astype("datetime64[Y]").astype(np.int64) + 1970
    local, type_idx = _contacts(rng, birth_year, year)
    when = _when(rng, year, type_idx)
    keep = when.date >= birth[local]  # no contact before birth
    local, type_idx, when = local[keep], type_idx[keep], when.kept(keep)
    n = len(local)
    person = persons[local]
    calendar = _Calendar(year)
    season = _SEASON_OF_MONTH[calendar.month[when.day]]
    # age at the contact: birthday passed when (month, day) of the contact ≥ (month, day) of birth
    birth_year_p = birth_year[local]
    had_birthday = calendar.month_day[when.day] >= _month_day(birth)[local]
    age = (year - birth_year_p - (~had_birthday)).astype(np.int16)
    main, second = _diagnoses(rng, type_idx, season)
    fees = _fees(rng, type_idx, when)
    amount, fritak, frikort = _copayment(rng, year, fees, age, local, person, when.timestamp)
    refund, reason = _refund(rng, year, fees, frikort | (age < 16))
    bosted, practice_idx, numbers = _residence(rng, population, person, year)
    behandler = _practitioners(rng, population, person, type_idx, pools)
    sex = population.sex[person].copy()
    sex[rng.random(n) < UNSPECIFIED_SEX_SHARE] = 9
    regning = first_regning + np.arange(n, dtype=np.int64)
    fnr = _bad_ids(rng, _id_text(population.fnr[persons]).take(pa.array(local)), bad_id_share)
    rows = np.argsort(when.timestamp, kind="stable") if by_time else slice(None)
    type_r, main_r = type_idx[rows], main[rows]
    columns = {
        "regning_id": pc.cast(pa.array(regning[rows]), pa.string()),
        "pasient_fnr": fnr.take(pa.array(rows)) if by_time else fnr,
        "pasient_kjonn": pa.array(sex[rows], pa.int8()),
        "pasient_fodselsar": pa.array(birth_year_p[rows].astype(np.int16), pa.int16()),
        "pasient_alder": pa.array(age[rows], pa.int16()),
        "pasient_bostedskommune": _labels(numbers, bosted[rows]),
        "behandler_id": pc.cast(pa.array(behandler[rows]), pa.string()),
        "behandler_praksistype": _labels(_TYPE_NAMES, type_r),
        "behandler_spesialitet": _labels([t[2] for t in codes.PRACTICE_TYPES], type_r),
        "behandler_praksiskommune": _labels(numbers, practice_idx[rows]),
        "behandlingstidspunkt": pa.array(when.timestamp[rows].astype("datetime64[ms]"), pa.timestamp("ms")),
        "takstkoder": _list_array(fees.fee[rows], fees.supplement[rows], _FEE_ARRAY),
        "diagnosekodeverk": _labels(_CODE_SYSTEM, np.where(main_r >= 0, type_r, -1)),
        "diagnosekoder": _list_array(main_r, second[rows], _CODE_ARRAY),
        "fritaksgrunn": _labels(_FRITAK, fritak[rows]),
        "egenandel": pa.array(amount[rows], pa.float64()),
        "refusjon": pa.array(np.round(refund[rows], 2), pa.float64()),
        "regning_status": _labels(["godkjent", "avvist"], (reason[rows] >= 0).astype(np.int8)),
        "avvisningsgrunn": _labels([r for r, _ in codes.REJECTION_REASONS], reason[rows]),
    }
    return pa.Table.from_pydict(columns, schema=SOURCE_SCHEMA)


def _contacts(rng: np.random.Generator, birth_year: np.ndarray, year: int) -> tuple[np.ndarray, np.ndarray]:
    """Each contact's person (index into the slice) and practice type.

    Contacts per person ~ Poisson(sum of the age band's rates), each contact's practice type drawn
    in proportion to the rates: the same as one Poisson count per type, with a draw per person."""
    age_now = np.clip(year - birth_year, 0, 120)
    band = np.searchsorted(codes.AGE_BANDS, age_now, side="right") - 1
    rates = np.array([t[3] for t in codes.PRACTICE_TYPES]).T  # band x type
    per_person = rng.poisson(rates.sum(axis=1)[band] * (birth_year <= year))
    local = np.repeat(np.arange(len(birth_year)), per_person)
    type_idx = np.empty(len(local), dtype=np.int64)
    claim_band = band[local]
    for b, band_rates in enumerate(rates):
        rows = np.flatnonzero(claim_band == b)
        type_idx[rows] = _categorical(rng, band_rates, len(rows))
    return local, type_idx


@dataclass(frozen=True)
class _When:
    """Each contact's day of the year, date, hour and timestamp; legevakt and its weekend contacts."""

    day: np.ndarray
    date: np.ndarray
    hour: np.ndarray
    timestamp: np.ndarray
    legevakt: np.ndarray
    weekend_legevakt: np.ndarray

    def kept(self, keep: np.ndarray) -> _When:
        return _When(*(getattr(self, f.name)[keep] for f in fields(self)))


def _when(rng: np.random.Generator, year: int, type_idx: np.ndarray) -> _When:
    n = len(type_idx)
    year_start = np.datetime64(f"{year}-01-01")
    days_in_year = int((np.datetime64(f"{year + 1}-01-01") - year_start).astype(int))
    day = rng.integers(0, days_in_year, n)
    legevakt = np.isin(type_idx, list(_LEGEVAKT))
    weekday = (day + (year_start.astype("datetime64[D]").astype(np.int64) + 3) % 7) % 7  # 0 = Monday
    weekend = weekday >= 5
    # a weekend visit moves to Friday, or to Monday when that Friday lies in the year before
    friday = day - (weekday - 4)
    day = np.where(weekend & ~legevakt, np.where(friday >= 0, friday, day + (7 - weekday)), day)
    date = year_start + day.astype("timedelta64[D]")
    hour = np.where(
        legevakt,
        _categorical(rng, _legevakt_hours(), n),
        np.where(rng.random(n) < 0.08, rng.integers(16, 20, n), rng.integers(8, 16, n)),
    )
    seconds = hour * 3600 + rng.integers(0, 3600, n)
    timestamp = date.astype("datetime64[s]") + seconds.astype("timedelta64[s]")
    return _When(day, date, hour, timestamp, legevakt, weekend & legevakt)


def _diagnoses(rng: np.random.Generator, type_idx: np.ndarray, season: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The main diagnosis (-1: none) and a second one on some claims (-1: none)."""
    main = _draw_codes(rng, type_idx, season)
    with_second = np.flatnonzero((rng.random(len(type_idx)) < SECOND_DIAGNOSIS_SHARE) & (main >= 0))
    second = np.full(len(type_idx), -1, dtype=np.int32)
    second[with_second] = _draw_codes(rng, type_idx[with_second], season[with_second])
    return main, np.where(second == main, -1, second)


@dataclass(frozen=True)
class _Fees:
    fee: np.ndarray  # index into the fee table
    supplement: np.ndarray  # index, or -1
    gp: np.ndarray
    gp_kind: np.ndarray  # 0 consultation, 1 e-consultation, 2 simple contact, 3 home visit
    legevakt: np.ndarray
    evening: np.ndarray
    type_idx: np.ndarray


def _fees(rng: np.random.Generator, type_idx: np.ndarray, when: _When) -> _Fees:
    n = len(type_idx)
    legevakt = when.legevakt
    evening = (when.hour >= 16) | (when.hour < 8) | when.weekend_legevakt
    gp = np.isin(type_idx, list(_GP))
    fee = np.full(n, -1, dtype=np.int32)
    supplement = np.full(n, -1, dtype=np.int32)
    r = rng.random(n)
    gp_kind = np.select([r < 0.2, r < 0.3, r < 0.305], [1, 2, 3], 0)
    consult = np.where(evening, _FEE_INDEX["2ak"], _FEE_INDEX["2ad"])
    simple = np.array([_FEE_INDEX[f] for f in codes.GP_SIMPLE])[rng.integers(0, 3, n)]
    home = np.where(evening, _FEE_INDEX["11ak"], _FEE_INDEX["11ad"])
    fee = np.where(gp, np.choose(gp_kind, [consult, np.full(n, _FEE_INDEX["2ae"]), simple, home]), fee)
    fee = np.where(legevakt, consult, fee)
    for practice, table in (
        ("FYNO", codes.PHYSIO_FEES),
        ("KINO", codes.CHIRO_FEES),
        ("PSNO", codes.PSYCH_FEES),
        ("LARO", codes.LAB_FEES),
    ):
        rows = type_idx == _TYPE_NAMES.index(practice)
        fee = np.where(rows, np.array([_FEE_INDEX[f] for f in table])[rng.integers(0, len(table), n)], fee)
    specialist = fee < 0
    fee = np.where(
        specialist,
        np.array([_FEE_INDEX[f] for f in codes.SPECIALIST_FEES])[rng.integers(0, len(codes.SPECIALIST_FEES), n)],
        fee,
    )
    supplement = np.where((gp | legevakt) & (gp_kind == 0) & (rng.random(n) < 0.25), _FEE_INDEX["2cd"], supplement)
    return _Fees(fee, supplement, gp, gp_kind, legevakt, evening, type_idx)


def _copayment(
    rng: np.random.Generator,
    year: int,
    fees: _Fees,
    age: np.ndarray,
    local: np.ndarray,
    person: np.ndarray,
    timestamp: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each claim's egenandel, fritaksgrunn (index into _FRITAK, -1 none) and whether the person's
    frikort (the year's ceiling reached) made it free."""
    n = len(local)
    gp, legevakt, type_idx = fees.gp, fees.legevakt, fees.type_idx
    day_fee, evening_fee, simple_fee, ceiling = codes.egenandel_for(year)
    amount = np.select(
        [
            gp & (fees.gp_kind == 2),
            (gp | legevakt) & fees.evening,
            gp | legevakt,
            type_idx == _TYPE_NAMES.index("LARO"),
            type_idx == _TYPE_NAMES.index("FYNO"),
        ],
        [simple_fee, evening_fee, day_fee, simple_fee, round(day_fee * 1.5)],
        round(day_fee * 2.2),
    ).astype(np.float64)
    fritak = np.full(n, -1, dtype=np.int8)
    child = age < 16
    other = (rng.random(n) < OTHER_FRITAK_SHARE) & ~child
    fritak[other] = np.array([0, 3, 4], dtype=np.int8)[rng.integers(0, 3, int(other.sum()))]  # A, G, H
    amount[child | other] = 0.0
    fritak[child] = 1  # B
    # claims in time order within each person: rows are grouped by person already, so one integer key
    # (person within the slice, then second of the year) sorts them; cheaper than lexsort
    second_of_year = (timestamp - np.datetime64(f"{year}-01-01T00:00:00")).astype(np.int64)
    order = np.argsort((local.astype(np.int64) << 25) | second_of_year, kind="stable")
    paid_sorted = amount[order]
    person_sorted = person[order]
    cumulative = np.cumsum(paid_sorted)
    starts = np.r_[True, person_sorted[1:] != person_sorted[:-1]]
    group_start = np.maximum.accumulate(np.where(starts, np.arange(n), 0))
    before = cumulative - paid_sorted - (cumulative[group_start] - paid_sorted[group_start])
    over = (before >= ceiling) & (paid_sorted > 0)
    paid_sorted = np.where(over, 0.0, np.minimum(paid_sorted, np.maximum(ceiling - before, 0.0)))
    amount[order] = paid_sorted
    frikort = np.zeros(n, dtype=bool)
    frikort[order] = over
    fritak[frikort] = 2  # F
    return amount, fritak, frikort


def _refund(rng: np.random.Generator, year: int, fees: _Fees, free: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each claim's refusjon and its rejection reason (index, -1: approved; a rejected claim refunds nothing).
    `free`: claims the patient paid nothing for (frikort, children), whose co-payment HELFO pays."""
    n = len(fees.fee)
    day_fee, evening_fee, _, _ = codes.egenandel_for(year)
    refund = _FEE_REFUND[fees.fee] + np.where(fees.supplement >= 0, _FEE_REFUND[np.maximum(fees.supplement, 0)], 0.0)
    refund = refund + np.where(free, np.where(fees.evening, evening_fee, day_fee) * (fees.gp | fees.legevakt), 0.0)
    avvist = rng.random(n) < AVVIST_SHARE
    reason_p = np.array([p for _, p in codes.REJECTION_REASONS])
    reason = np.full(n, -1, dtype=np.int8)
    reason[avvist] = rng.choice(len(reason_p), int(avvist.sum()), p=reason_p / reason_p.sum())
    refund[avvist] = 0.0
    return refund, reason


def _residence(
    rng: np.random.Generator, population: Population, person: np.ndarray, year: int
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Home kommune in this year (after a move from the move year on; some Oslo claims with a bydel
    code) and practice kommune, as indexes into the returned kommune numbers."""
    n = len(person)
    numbers = [*kommuner.numbers_in(year), *kommuner.OSLO_BYDELER]
    kommune_idx = np.where(year >= population.move_year[person], population.moved_to[person], population.home[person])
    bosted = kommune_idx.astype(np.int32)
    oslo_bydel = (kommune_idx == kommuner.OSLO_INDEX) & (rng.random(n) < OSLO_BYDEL_SHARE)
    bosted[oslo_bydel] = len(kommuner.KOMMUNER) + rng.integers(0, len(kommuner.OSLO_BYDELER), int(oslo_bydel.sum()))
    practice_idx = np.where(
        rng.random(n) < PRACTICE_ELSEWHERE_SHARE,
        _categorical(rng, kommuner.weights(), n),
        kommune_idx,
    )
    return bosted, practice_idx, numbers


def _practitioners(
    rng: np.random.Generator, population: Population, person: np.ndarray, type_idx: np.ndarray, pools: np.ndarray
) -> np.ndarray:
    """Everyone has a fastlege; other contacts go to someone of that practice type."""
    pool_start = np.r_[0, np.cumsum(pools)[:-1]]
    behandler_local = np.where(
        type_idx == 0,
        population.fastlege[person] % pools[0],
        rng.integers(0, 1 << 30, len(person)) % pools[type_idx],
    )
    return 1_000_000 + pool_start[type_idx] + behandler_local


def _labels(labels: Sequence[str | None], index: np.ndarray) -> pa.Array:
    """A string column from label indices; −1 (or a None label) gives null. Vectorised in Arrow."""
    idx = pa.array(index.astype(np.int32), mask=index < 0)
    return pc.take(pa.array(labels, pa.string()), idx)


def _legevakt_hours() -> np.ndarray:
    w = np.ones(24)
    w[8:16] = 2.0
    w[16:23] = 5.0
    w[23] = 2.0
    w[0:7] = 0.8
    return w / w.sum()
