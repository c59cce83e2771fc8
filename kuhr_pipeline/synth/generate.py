"""Writing a synthetic source year by year, a slice of persons at a time, so memory stays bounded.

The whole run is determined by the seed: the population from `seed`, each (year, slice) from
(seed, year, slice). The folder appears whole or not at all (written aside, then renamed).

Two orders of the same rows: `time` (the default) writes each year as one file sorted by
`behandlingstidspunkt`, in row groups as a default writer makes them, as a register export is
written in the order claims arrive, so a person's claims are spread over every row group (an
external merge sort, `time_order`, keeps memory bounded); `person` writes each slice of persons as
its own file, a person's claims together (the favourable case for pass 1).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from kuhr_pipeline.errors import KuhrError
from kuhr_pipeline.synth import codes
from kuhr_pipeline.synth.claims import make_year
from kuhr_pipeline.synth.parquet_settings import parquet_options
from kuhr_pipeline.synth.population import make_population
from kuhr_pipeline.synth.time_order import merge_year, spill_run

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

    runs = staging / ".runs"  # time order's sorted slices, until their year is merged
    runs.mkdir()

    def make_slice(year: int, part: int) -> int:
        """One (year, slice), made from its own seed and written to its own file: in person order
        the source's, in time order a sorted run for its year's merge."""
        rng = np.random.default_rng([seed, year, part])
        slice_ = np.arange(part * slice_size, min((part + 1) * slice_size, persons))
        first_regning = year * 10**10 + part * REGNING_IDS_PER_SLICE
        table = make_year(rng, population, slice_, year, first_regning, bad_id_share, pools, by_time=order == "time")
        if order == "person":
            path = staging / f"ar={year}" / f"part-{part:04d}.parquet"
            pq.write_table(table, path, row_group_size=256 * 1024, **parquet_options(table.schema))
        else:
            spill_run(table, _run_path(runs, year, part))
        return table.num_rows

    years = _Years(staging, runs, order, parts, on_progress)
    try:
        slices = [(year, part) for year in range(from_year, to_year + 1) for part in range(parts)]
        claims = _two_at_a_time(slices, make_slice, years.slice_made)
        years.wait()
        years.close()
        runs.rmdir()
        if out.exists():
            out.rmdir()
        staging.rename(out)
    except BaseException:
        years.close()
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
    """Counts the slices as they are made; in time order, merges a year's sorted runs into its file
    once all its slices are made, on a thread of its own while the next year's slices are made (one
    year at a time, so at most two years' runs are on disk: merging two at once was no faster, both
    cores being busy already)."""

    def __init__(
        self, staging: Path, runs: Path, order: str, parts: int, on_progress: Callable[[int], None] | None
    ) -> None:
        self.staging, self.runs, self.order, self.parts, self.on_progress = staging, runs, order, parts, on_progress
        self.slices: dict[int, int] = {}
        self.claims: dict[int, int] = {}
        self._merger = ThreadPoolExecutor(max_workers=1)
        self._merging: Future[None] | None = None

    def slice_made(self, year: int, part: int, claims: int) -> int:
        if self.on_progress:
            self.on_progress(claims)
        if self.order == "time":
            self.slices[year] = self.slices.get(year, 0) + 1
            self.claims[year] = self.claims.get(year, 0) + claims
            if self.slices[year] == self.parts:
                self.wait()
                runs = [_run_path(self.runs, year, p) for p in range(self.parts)]
                out = self.staging / f"ar={year}" / "part-0000.parquet"
                self._merging = self._merger.submit(merge_year, runs, out, year, self.claims[year])
        return claims

    def wait(self) -> None:
        """Until the year being merged is written (raising what its merge raised)."""
        merging, self._merging = self._merging, None
        if merging is not None:
            merging.result()

    def close(self) -> None:
        self._merger.shutdown(wait=True, cancel_futures=True)


def _run_path(runs: Path, year: int, part: int) -> Path:
    return runs / f"{year}-{part:04d}.arrow"


def _two_at_a_time(
    slices: list[tuple[int, int]],
    make: Callable[[int, int], int],
    made: Callable[[int, int, int], int],
) -> int:
    """`make` each (year, part) on WORKERS threads, handing each result to `made` in the main
    thread, in slice order among those done together; returns the sum of what `made` returns.
    numpy and Parquet release the GIL for their bulk work, so two slices at a time use both cores,
    and at most two slices are in memory."""
    total = 0
    pool = ThreadPoolExecutor(max_workers=WORKERS)
    running: dict[Future[int], tuple[int, int]] = {}
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


def expected_claims(persons: int, years: int) -> int:
    """A rough size for progress bars: about 5.2 claims per person and year."""
    return int(persons * years * 5.2)
