"""Writing a synthetic source year by year, a slice of persons at a time, so memory stays bounded.

The whole run is determined by the seed: the population from `seed`, each (year, slice) from
(seed, year, slice). The folder appears whole or not at all (written aside, then renamed).

Two orders of the same rows: `time` (the default) writes each year as one file sorted by
`behandlingstidspunkt`, in row groups as a default writer makes them, as a register export is
written in the order claims arrive, so a person's claims are spread over every row group; `person`
writes each slice of persons as its own file, a person's claims together (the favourable case for
pass 1). Time order holds one year in memory to sort it (about 1 GB at 6.7 M claims a year).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from kuhr_pipeline.errors import KuhrError
from kuhr_pipeline.synth import codes
from kuhr_pipeline.synth.claims import make_year
from kuhr_pipeline.synth.population import make_population

PERSONS_PER_SLICE = 200_000  # at most; a year's slices are made equal
PERSONS_PER_FASTLEGE = 1_100  # 4 787 fastleger for 5.5 M people (2018)
DEFAULT_BAD_ID_SHARE = 0.004
WORKERS = 2
REGNING_IDS_PER_SLICE = 10**8  # a slice's claims are numbered year·10¹⁰ + slice·10⁸ + i
ORDERS = ("time", "person")


@dataclass(frozen=True)
class SynthReport:
    path: Path
    persons: int
    claims: int
    years: list[int]


def _pools(persons: int) -> np.ndarray:
    """Practitioners per practice type, scaled to the population."""
    fastleger = max(3, persons // PERSONS_PER_FASTLEGE)
    sizes = [fastleger] + [
        max(2, int(fastleger * sum(t[3]) / sum(codes.PRACTICE_TYPES[0][3]) / 2)) for t in codes.PRACTICE_TYPES[1:]
    ]
    return np.array(sizes, dtype=np.int64)


def generate_source(
    out: str | Path,
    persons: int = 10_000,
    from_year: int = 2018,
    to_year: int = 2024,
    seed: int = 42,
    bad_id_share: float = DEFAULT_BAD_ID_SHARE,
    on_progress: Callable[[int], None] | None = None,
    order: str = "time",
) -> SynthReport:
    """Write a Hive-partitioned source (`ar=YYYY/part-N.parquet`) for the given years, its rows in
    `order` (see the module's docstring)."""
    out = Path(out)
    _refuse_arguments(out, persons, from_year, to_year, bad_id_share, order)
    pools = _pools(persons)
    population = make_population(np.random.default_rng(seed), persons, to_year, int(pools[0]))
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    for year in range(from_year, to_year + 1):
        (staging / f"ar={year}").mkdir()
    parts = -(-persons // PERSONS_PER_SLICE)
    slice_size = -(-persons // parts)  # slices of even size keep both workers busy to the end

    def make_slice(year: int, part: int) -> pa.Table:
        """One (year, slice), made from its own seed; in person order also written to its own file."""
        rng = np.random.default_rng([seed, year, part])
        slice_ = np.arange(part * slice_size, min((part + 1) * slice_size, persons))
        first_regning = year * 10**10 + part * REGNING_IDS_PER_SLICE
        table = make_year(rng, population, slice_, year, first_regning, bad_id_share, pools)
        if order == "person":
            _write(table, staging / f"ar={year}" / f"part-{part:04d}.parquet", row_group_size=256 * 1024)
        return table

    years = _Years(staging, order, parts, on_progress)
    try:
        slices = [(year, part) for year in range(from_year, to_year + 1) for part in range(parts)]
        claims = _two_at_a_time(slices, make_slice, years.slice_made)
        if out.exists():
            out.rmdir()
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return SynthReport(out, persons, claims, list(range(from_year, to_year + 1)))


def _refuse_arguments(out: Path, persons: int, from_year: int, to_year: int, bad_id_share: float, order: str) -> None:
    where = str(out)
    if persons < 1:
        raise KuhrError.single(where, "--persons", "must be at least 1")
    if not 2006 <= from_year <= to_year <= 2100:
        raise KuhrError.single(
            where,
            "--from-year/--to-year",
            f"{from_year}–{to_year} is not a valid range",
            "KUHR has data from 2006; from must not be after to",
        )
    if order not in ORDERS:
        raise KuhrError.single(where, "--order", f"{order!r} is no order", f"give one of {', '.join(ORDERS)}")
    if not 0 <= bad_id_share < 0.5:
        raise KuhrError.single(where, "bad_id_share", "must lie in [0, 0.5)")
    if out.exists() and any(out.iterdir()):
        raise KuhrError.single(where, "--out", "exists and is not empty", "choose a new folder or remove it")


class _Years:
    """Counts the slices as they are made; in time order, writes a year once all its slices are made."""

    def __init__(self, staging: Path, order: str, parts: int, on_progress: Callable[[int], None] | None) -> None:
        self.staging, self.order, self.parts, self.on_progress = staging, order, parts, on_progress
        self.made: dict[int, dict[int, pa.Table]] = {}

    def slice_made(self, year: int, part: int, table: pa.Table) -> int:
        if self.on_progress:
            self.on_progress(table.num_rows)
        if self.order == "time":
            made = self.made.setdefault(year, {})
            made[part] = table
            if len(made) == self.parts:
                whole = pa.concat_tables([made[p] for p in range(self.parts)]).sort_by("behandlingstidspunkt")
                del self.made[year]
                _write(whole, self.staging / f"ar={year}" / "part-0000.parquet", row_group_size=None)
        return table.num_rows


def _two_at_a_time(
    slices: list[tuple[int, int]],
    make: Callable[[int, int], pa.Table],
    made: Callable[[int, int, pa.Table], int],
) -> int:
    """`make` each (year, part) on WORKERS threads, handing each result to `made` in the main
    thread, in slice order among those done together; returns the sum of what `made` returns.
    numpy and Parquet release the GIL for their bulk work, so two slices at a time use both cores,
    and at most two slices (in time order: a year and two slices) are in memory."""
    total = 0
    pool = ThreadPoolExecutor(max_workers=WORKERS)
    running: dict[Future[pa.Table], tuple[int, int]] = {}
    try:
        for year, part in slices:
            if len(running) == WORKERS:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in sorted(done, key=running.__getitem__):
                    total += made(*running.pop(future), future.result())
            running[pool.submit(make, year, part)] = (year, part)
        for future in sorted(running, key=running.__getitem__):
            total += made(*running[future], future.result())
        running.clear()
    finally:
        for future in running:
            future.cancel()
        pool.shutdown(wait=True)
    return total


# Nearly one value per claim: a dictionary would only be built to be thrown away (Parquet falls back to
# plain encoding once it grows past a page), which cost a fifth of the writing.
_NO_DICTIONARY = {"regning_id", "pasient_fnr", "behandlingstidspunkt"}


def _write(table: pa.Table, path: Path, row_group_size: int | None) -> None:
    # A list's values are the Parquet column `name.list.element`: naming the list itself would
    # leave its codes without a dictionary.
    dictionary = [
        f"{field.name}.list.element" if pa.types.is_list(field.type) else field.name
        for field in table.schema
        if field.name not in _NO_DICTIONARY
    ]
    pq.write_table(table, path, compression="snappy", row_group_size=row_group_size, use_dictionary=dictionary)


def expected_claims(persons: int, years: int) -> int:
    """A rough size for progress bars: about 5.2 claims per person and year."""
    return int(persons * years * 5.2)
