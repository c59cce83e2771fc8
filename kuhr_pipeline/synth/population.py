"""A synthetic population: birth dates from a Norwegian age pyramid, sex, residence, national ids.

- Ages follow SSB's 2024 pyramid in broad steps (smaller birth cohorts of the 2010s, the large
  1940s–1990s cohorts, few over 90), sexes about even.
- Ids are real-shaped fødselsnummer: DDMMYY, an individual number in the century's range
  (000–499 for 1900–1999, 500–999 for 2000–2039) whose last digit is odd for men, and check
  digits by the pre-2032 rule. About 3 % are D-numbers (day + 40) and 0.3 % H-numbers (month + 40).
- Residence is a real kommune weighted by population; about 5 % of persons move once, in a
  random year, to another kommune.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kuhr_pipeline.synth import kommuner

D_NUMBER_SHARE = 0.03
H_NUMBER_SHARE = 0.003
MOVER_SHARE = 0.05

_W1 = np.array([3, 7, 6, 1, 8, 9, 4, 5, 2], dtype=np.int64)
_W2 = np.array([5, 4, 3, 2, 7, 6, 5, 4, 3, 2], dtype=np.int64)


@dataclass(frozen=True)
class Population:
    birth_date: np.ndarray  # datetime64[D]
    sex: np.ndarray  # int8: 1 mann, 2 kvinne
    fnr: np.ndarray  # int64: the 11-digit id as a number
    home: np.ndarray  # int16: kommune index before any move
    moved_to: np.ndarray  # int16: kommune index after the move (== home for non-movers)
    move_year: np.ndarray  # int16: year of the move (9999 for non-movers)
    fastlege: np.ndarray  # int32: index into the fastlege pool

    def __len__(self) -> int:
        return len(self.fnr)


def _age_weights() -> np.ndarray:
    ages = np.arange(101)
    w = np.select(
        [ages < 10, ages < 20, ages < 40, ages < 60, ages < 70, ages < 80, ages < 90],
        [1.05, 1.2, 1.38, 1.3, 1.15, 0.9, 0.42],
        0.08,
    ).astype(np.float64)
    return w / w.sum()


def _digits(values: np.ndarray, width: int) -> np.ndarray:
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    return (values[:, None] // powers[None, :]) % 10


def make_ids(rng: np.random.Generator, birth_date: np.ndarray, sex: np.ndarray) -> np.ndarray:
    """Unique, valid 11-digit ids (as int64) consistent with birth date and sex."""
    n = len(birth_date)
    years = birth_date.astype("datetime64[Y]").astype(np.int64) + 1970
    months = birth_date.astype("datetime64[M]").astype(np.int64) % 12 + 1
    days = (birth_date - birth_date.astype("datetime64[M]")).astype(np.int64) + 1
    kind = rng.random(n)
    day_field = np.where(kind < D_NUMBER_SHARE, days + 40, days)
    month_field = np.where((kind >= D_NUMBER_SHARE) & (kind < D_NUMBER_SHARE + H_NUMBER_SHARE), months + 40, months)
    low = np.where(years >= 2000, 500, 0)
    individual = low + 2 * rng.integers(0, 250, n) + (sex == 1)  # odd for men
    ids = np.zeros(n, dtype=np.int64)
    todo = np.ones(n, dtype=bool)
    for _ in range(600):
        if not todo.any():
            break
        idx = np.flatnonzero(todo)
        first_nine = day_field[idx] * 10**7 + month_field[idx] * 10**5 + (years[idx] % 100) * 10**3 + individual[idx]
        d = _digits(first_nine, 9)
        k1 = (-(d @ _W1)) % 11
        k2 = (-(np.concatenate([d, k1[:, None]], axis=1) @ _W2)) % 11
        ok = (k1 < 10) & (k2 < 10)
        ids[idx[ok]] = first_nine[ok] * 100 + k1[ok] * 10 + k2[ok]
        todo[idx[ok]] = False
        individual[idx[~ok]] = low[idx[~ok]] + (individual[idx[~ok]] - low[idx[~ok]] + 2) % 500
        # collisions: keep the first holder of a number, give the others a new individual number
        if not todo.any():
            _, first = np.unique(ids, return_index=True)
            dup = np.ones(n, dtype=bool)
            dup[first] = False
            if dup.any():
                todo |= dup
                individual[dup] = low[dup] + 2 * rng.integers(0, 250, int(dup.sum())) + (sex[dup] == 1)
    if todo.any():
        raise RuntimeError("could not draw unique ids: population too large for one birth date range")
    return ids


def make_population(rng: np.random.Generator, persons: int, reference_year: int, fastleger: int) -> Population:
    ages = rng.choice(101, size=persons, p=_age_weights())
    birth_year = reference_year - ages
    start = (birth_year - 1970).astype("datetime64[Y]").astype("datetime64[D]")
    birth_date = start + rng.integers(0, 365, persons).astype("timedelta64[D]")
    sex = np.where(rng.random(persons) < 0.497, 1, 2).astype(np.int8)
    home = rng.choice(len(kommuner.KOMMUNER), size=persons, p=kommuner.weights()).astype(np.int16)
    movers = rng.random(persons) < MOVER_SHARE
    moved_to = np.where(movers, rng.choice(len(kommuner.KOMMUNER), size=persons), home).astype(np.int16)
    move_year = np.where(movers, rng.integers(reference_year - 15, reference_year + 1, persons), 9999).astype(np.int16)
    return Population(
        birth_date=birth_date,
        sex=sex,
        fnr=make_ids(rng, birth_date, sex),
        home=home,
        moved_to=moved_to,
        move_year=move_year,
        fastlege=rng.integers(0, max(1, fastleger), persons).astype(np.int32),
    )
