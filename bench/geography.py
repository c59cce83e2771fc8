"""What `geography: {map: Y}` costs: the kommune harmonisation of a source's home kommuner, batch by
batch as the extract does it, against generalising the same batches as recorded.

    .venv/bin/python bench/geography.py [SOURCE] [--map 2024]

SOURCE: a source folder (default: the bench's 20 M-claim source if `bench/run.py` made one, else
data/sample). Prints rows, seconds with and without the map, and rows per second; appends them to
bench/RESULTS.md unless --no-record.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.dataset as ds

from kuhr_pipeline.extract.generalise import generalise

ROOT = Path(__file__).resolve().parents[1]
CANDIDATES = [ROOT / "bench" / "work" / "time" / "source", ROOT / "bench" / "work" / "source", ROOT / "data" / "sample"]


def _timed(source: Path, map_year: int | None) -> tuple[int, float]:
    dataset = ds.dataset(source, format="parquet", partitioning="hive")
    rows, spent = 0, 0.0
    for batch in dataset.to_batches(columns=["pasient_bostedskommune", "ar"], batch_size=1_000_000):
        start = time.perf_counter()
        for how in ("kommune", "fylke"):
            generalise(batch.column("pasient_bostedskommune"), how, batch.column("ar"), map_year)
        spent += time.perf_counter() - start
        rows += batch.num_rows
    return rows, spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", nargs="?", type=Path)
    parser.add_argument("--map", type=int, default=2024)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    source = args.source or next(path for path in CANDIDATES if path.exists())
    _timed(source, args.map)  # warm: the lists loaded, the answers remembered as in a long run
    rows, recorded = _timed(source, None)
    _, mapped = _timed(source, args.map)
    shown = source.relative_to(ROOT) if source.is_relative_to(ROOT) else source
    lines = [
        f"## {datetime.now(UTC):%Y-%m-%d %H:%M} UTC — geography: kommune and fylke of {rows:,} claims",
        "",
        f"Command: `.venv/bin/python bench/geography.py {shown} --map {args.map}` at commit {_commit()}  ",
        f"Machine: {platform.machine()}, Python {platform.python_version()}",
        "",
        "| generalised | seconds | million rows/s |",
        "|---|---:|---:|",
        f"| as recorded | {recorded:.2f} | {rows / recorded / 1e6:.1f} |",
        f"| on the map of {args.map} | {mapped:.2f} | {rows / mapped / 1e6:.1f} |",
        "",
    ]
    print("\n".join(lines))
    if not args.no_record:
        results = ROOT / "bench" / "RESULTS.md"
        head, _, rest = results.read_text(encoding="utf-8").partition("\n## ")
        results.write_text(f"{head}\n" + "\n".join(lines) + f"\n## {rest}", encoding="utf-8")


def _commit() -> str:
    return subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()


if __name__ == "__main__":
    main()
