"""Writing a synthetic source year by year, a slice of persons at a time, so memory stays bounded.

The whole run is determined by the seed: the population from `seed`, each (year, slice) from
(seed, year, slice). The folder appears whole or not at all (written aside, then renamed).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from kuhr_pipeline.errors import KuhrError
from kuhr_pipeline.synth import codes
from kuhr_pipeline.synth.claims import make_year
from kuhr_pipeline.synth.population import make_population

PERSONS_PER_SLICE = 200_000
PERSONS_PER_FASTLEGE = 1_100  # 4 787 fastleger for 5.5 M people (2018)
DEFAULT_BAD_ID_SHARE = 0.004


@dataclass(frozen=True)
class SynthReport:
    path: Path
    persons: int
    bills: int
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
) -> SynthReport:
    """Write a Hive-partitioned source (`ar=YYYY/part-N.parquet`) for the given years."""
    out = Path(out)
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
    if not 0 <= bad_id_share < 0.5:
        raise KuhrError.single(where, "bad_id_share", "must lie in [0, 0.5)")
    if out.exists() and any(out.iterdir()):
        raise KuhrError.single(where, "--out", "exists and is not empty", "choose a new folder or remove it")

    pools = _pools(persons)
    population = make_population(np.random.default_rng(seed), persons, to_year, int(pools[0]))
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    bills = 0
    # Parquet encoding releases the GIL: one writer thread overlaps writing a slice with making the next.
    writer = ThreadPoolExecutor(max_workers=1)
    pending: list[Future[None]] = []
    try:
        for year in range(from_year, to_year + 1):
            year_dir = staging / f"ar={year}"
            year_dir.mkdir()
            in_year = 0
            for part, start in enumerate(range(0, persons, PERSONS_PER_SLICE)):
                rng = np.random.default_rng([seed, year, part])
                slice_ = np.arange(start, min(start + PERSONS_PER_SLICE, persons))
                table = make_year(rng, population, slice_, year, year * 10**10 + in_year, bad_id_share, pools)
                for done in pending:
                    done.result()  # at most one slice waits in memory
                pending = [writer.submit(_write, table, year_dir / f"part-{part:04d}.parquet")]
                in_year += table.num_rows
                if on_progress:
                    on_progress(table.num_rows)
            bills += in_year
        for done in pending:
            done.result()
        if out.exists():
            out.rmdir()
        staging.rename(out)
    except BaseException:
        for done in pending:
            done.cancel()
        writer.shutdown(wait=True)
        shutil.rmtree(staging, ignore_errors=True)
        raise
    writer.shutdown()
    return SynthReport(out, persons, bills, list(range(from_year, to_year + 1)))


def _write(table: pa.Table, path: Path) -> None:
    pq.write_table(table, path, compression="snappy", row_group_size=256 * 1024)


def expected_bills(persons: int, years: int) -> int:
    """A rough size for progress bars: about 5.2 bills per person and year."""
    return int(persons * years * 5.2)
