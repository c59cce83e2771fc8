"""What a population file costs a delivery: the benchmark application with and without a population
of 1 M persons (every person of the source, the rest made-up valid ids) delivered by løpenummer.

    .venv/bin/python bench/population.py [--claims 20000000] [--persons 1000000] [--repeat 2]

Runs on the source `bench/run.py` made for `--claims` (make it first). Times each delivery as a
whole process (wall time, peak RSS of the largest process and of all together, as run.py does),
alternating the two, and appends the medians to bench/RESULTS.md unless --no-record.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.dataset as ds

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from run import BIN, REPO, commit, machine, new_postgres_database, timed  # noqa: E402

from kuhr_pipeline.identity.fodselsnummer import check_ids  # noqa: E402
from kuhr_pipeline.synth.population import make_ids  # noqa: E402


def population_csv(source: Path, persons: int, out: Path) -> int:
    """Every valid id of the source, then made-up valid ids up to `persons`, each with a løpenummer."""
    ids = check_ids(ds.dataset(source, partitioning="hive").to_table(columns=["pasient_fnr"]).column(0))
    numbers = np.unique(ids.number[ids.valid])
    extra = persons - len(numbers)
    if extra > 0:
        rng = np.random.default_rng(7)
        births = np.datetime64("1930-01-01") + rng.integers(0, 90 * 365, extra * 2).astype("timedelta64[D]")
        made = make_ids(rng, births, rng.integers(1, 3, extra * 2))
        more = np.setdiff1d(np.unique(made), numbers)[:extra]
        numbers = np.concatenate([numbers, more])
    table = pa.table(
        {
            "fnr": pa.array([f"{n:011d}" for n in numbers.tolist()]),
            "lopenr": pa.array([f"L{i:09d}" for i in range(len(numbers))]),
        }
    )
    pacsv.write_csv(table, out)
    return len(numbers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--claims", type=int, default=20_000_000)
    parser.add_argument("--persons", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--work", type=Path, default=Path("/tmp/kuhr-bench"))
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    work = args.work / f"{args.claims}-time"
    source = work / "source"
    if not source.exists():
        raise SystemExit(f"no bench source at {source}: run bench/run.py --claims {args.claims} first")
    home, apps, keys = work / "population" / "dagster_home", work / "population" / "apps", work / "population" / "keys"
    shutil.rmtree(work / "population", ignore_errors=True)
    for folder in (home, apps, keys):
        folder.mkdir(parents=True)
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "KUHR_DELIVERIES": str(work / "population" / "deliveries"),
        "KUHR_PSEUDONYM_KEY_FILE": str(keys / "pseudonym.key"),
        "KUHR_SIGNING_KEY_FILE": str(keys / "signing.pem"),
        "KUHR_POPULATION_KEY_FILE": str(keys / "population.sec"),
        "DAGSTER_DG_UPDATE_CHECK_ENABLED": "0",
        **new_postgres_database(work / "population"),
    }
    shutil.copy(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
    cli = str(BIN / "kuhr-pipeline")
    subprocess.run([cli, "keys", "init"], env=env, check=True, stdout=subprocess.DEVNULL)
    subprocess.run(
        [sys.executable, "-c", "import dagster; dagster.DagsterInstance.get().dispose()"], env=env, check=True
    )
    plain = work / "population" / "utvalg.csv"
    listed = population_csv(source, args.persons, plain)
    (apps / "populations").mkdir()
    subprocess.run(
        [cli, "population", "encrypt", str(plain), "--out", str(apps / "populations" / "bench.c4gh")],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    plain.unlink()
    shutil.copytree(BENCH / "recipients", apps / "recipients")
    spec = (BENCH / "benchmark-application.yaml").read_text()
    (apps / "plain.yaml").write_text(spec)
    (apps / "population.yaml").write_text(
        spec.replace("application_id: BENCH-0001", "application_id: BENCH-0002")
        + "population: {file: populations/bench.c4gh}\nidentity: {pseudonym: lopenr}\n"
    )
    commands = {
        name: [cli, "deliver", "--again", str(apps / f"{name}.yaml"), "--source", str(source)]
        for name in ("plain", "population")
    }
    timed("warm-up (the source's claim-id check)", commands["plain"], env, work / "population" / "warm.log")
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in commands}
    for _ in range(args.repeat):
        for name, command in commands.items():
            runs[name].append(timed(name, command, env, work / "population" / f"{name}.log"))
    record(args, listed, runs)


def record(args: argparse.Namespace, listed: int, runs: dict[str, list[dict[str, float]]]) -> None:
    def median(name: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[name])

    def each(name: str) -> str:
        return ", ".join(f"{r['seconds']:.1f}" for r in runs[name])

    lines = [
        f"## {datetime.now(UTC):%Y-%m-%d %H:%M} UTC — a population file of {listed:,} persons, "
        f"{args.claims:,}-claim source",
        "",
        f"Command: `.venv/bin/python bench/population.py --claims {args.claims} --persons {args.persons} "
        f"--repeat {args.repeat}` at commit {commit()}  ",
        f"Machine: {machine()}",
        "",
        "| deliver | wall time (s), median | peak RSS (GB) | all processes (GB) |",
        "|---|---:|---:|---:|",
        *(
            f"| {label} | {median(name, 'seconds'):.1f} ({each(name)}) | "
            f"{median(name, 'rss_gb'):.2f} | {median(name, 'tree_rss_gb'):.2f} |"
            for name, label in (("plain", "without a population"), ("population", "with it, by løpenummer"))
        ),
        "",
    ]
    print("\n".join(lines))
    if not args.no_record:
        results = BENCH / "RESULTS.md"
        head, _, rest = results.read_text(encoding="utf-8").partition("\n## ")
        results.write_text(f"{head}\n" + "\n".join(lines) + f"\n## {rest}", encoding="utf-8")


if __name__ == "__main__":
    main()
