"""What `geography: {map: 2024}` costs a whole delivery: the benchmark application (home fylke) with
and without the map, alternating, on the source `bench/run.py` made.

    .venv/bin/python bench/geography_deliver.py [--claims 20000000] [--repeat 2]

Appends the medians to bench/RESULTS.md unless --no-record.
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

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from run import BIN, REPO, commit, machine, new_postgres_database, timed  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--claims", type=int, default=20_000_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--work", type=Path, default=Path("/tmp/kuhr-bench"))
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    work = args.work / f"{args.claims}-time"
    source, here = work / "source", work / "geography"
    if not source.exists():
        raise SystemExit(f"no bench source at {source}: run bench/run.py --claims {args.claims} first")
    shutil.rmtree(here, ignore_errors=True)
    (here / "dagster_home").mkdir(parents=True)
    env = {
        **os.environ,
        "DAGSTER_HOME": str(here / "dagster_home"),
        "KUHR_DELIVERIES": str(here / "deliveries"),
        "KUHR_PSEUDONYM_KEY_FILE": str(here / "keys" / "pseudonym.key"),
        "KUHR_SIGNING_KEY_FILE": str(here / "keys" / "signing.pem"),
        "DAGSTER_DG_UPDATE_CHECK_ENABLED": "0",
        **new_postgres_database(here),
    }
    shutil.copy(REPO / "deploy" / "dagster.yaml", here / "dagster_home" / "dagster.yaml")
    cli = str(BIN / "kuhr-pipeline")
    subprocess.run([cli, "keys", "init"], env=env, check=True, stdout=subprocess.DEVNULL)
    instance = "import dagster; dagster.DagsterInstance.get().dispose()"
    subprocess.run([sys.executable, "-c", instance], env=env, check=True)
    apps = here / "apps"
    shutil.copytree(BENCH / "recipients", apps / "recipients")
    spec = (BENCH / "benchmark-application.yaml").read_text()
    (apps / "recorded.yaml").write_text(spec)
    (apps / "mapped.yaml").write_text(spec + "geography: {map: 2024}\n")
    commands = {
        name: [cli, "deliver", "--again", str(apps / f"{name}.yaml"), "--source", str(source)]
        for name in ("recorded", "mapped")
    }
    timed("warm-up (the source's claim-id check)", commands["recorded"], env, here / "warm.log")
    runs: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.repeat):
        for name, command in commands.items():
            runs[name].append(timed(name, command, env, here / f"{name}.log")["seconds"])
    lines = [
        f"## {datetime.now(UTC):%Y-%m-%d %H:%M} UTC — a delivery with geography: {{map: 2024}} and without, "
        f"{args.claims:,}-claim source",
        "",
        f"Command: `.venv/bin/python bench/geography_deliver.py --claims {args.claims} --repeat {args.repeat}` "
        f"at commit {commit()}  ",
        f"Machine: {machine()}",
        "",
        "| deliver (home fylke) | wall time (s), median | runs |",
        "|---|---:|---|",
        *(
            f"| {label} | {statistics.median(runs[name]):.1f} | {', '.join(f'{s:.1f}' for s in runs[name])} |"
            for name, label in (("recorded", "as recorded"), ("mapped", "on the map of 2024"))
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
