"""One command for the register-scale benchmark (see bench/README.md).

    .venv/bin/python bench/run.py                  # ~20 million claims, in time order (as the register exports)
    .venv/bin/python bench/run.py --order person   # the same claims, a person's together
    .venv/bin/python bench/run.py --small          # ~2 million claims

Generates a synthetic source, then times as whole processes (GNU time -v: wall time, peak RSS)
the synthetic generator, `kuhr-pipeline deliver` of bench/benchmark-application.yaml, the floor
(bench/floor.py) and the naive pandas script (bench/naive.py); appends the figures, the machine
and the command to bench/RESULTS.md, newest first.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
BIN = Path(sys.executable).parent
CLAIMS_PER_PERSON = 5.2 * 6  # claims per person over the six years 2019–2024 (measured on the generator)


def timed(name: str, command: list[str], env: dict[str, str], log: Path) -> dict[str, float]:
    print(f"[bench] {name}: {' '.join(command)}", flush=True)
    before = cpu_times()
    with log.open("w") as out:
        process = subprocess.Popen(["/usr/bin/time", "-v", *command], env=env, stdout=out, stderr=subprocess.STDOUT)
        tree_peak, tree, looked = 0, [process.pid], 0.0
        while process.poll() is None:  # GNU time reports the largest single process; this sums them all
            if time.monotonic() - looked > 0.5:  # walking /proc costs ~5 ms: twice a second, not every sample
                tree, looked = descendants(process.pid), time.monotonic()
            tree_peak = max(tree_peak, sum(resident_bytes(pid) for pid in tree))
            time.sleep(0.05)
    spent = [after - start for after, start in zip(cpu_times(), before, strict=True)]
    text = log.read_text()
    if process.returncode != 0:
        raise SystemExit(f"{name} failed (exit {process.returncode}); see {log}\n{text[-2000:]}")
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", text)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    assert wall and rss, text[-1000:]
    parts = [float(p) for p in wall.group(1).split(":")]
    seconds = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
    result = {"seconds": seconds, "rss_gb": int(rss.group(1)) / 1024 / 1024, "tree_rss_gb": tree_peak / 1024**3,
              "steal": 100 * spent[7] / max(sum(spent), 1)}
    print(f"[bench] {name}: {seconds:.1f} s, {result['rss_gb']:.2f} GB peak RSS "
          f"({result['tree_rss_gb']:.2f} GB all processes), {result['steal']:.0f} % CPU stolen", flush=True)
    return result


def cpu_times() -> list[int]:
    """The machine's CPU time so far by kind (/proc/stat: user, nice, system, idle, iowait, irq,
    softirq, steal). Steal is time the hypervisor gave this VM's cores to another: a run with
    much of it was slowed by a neighbour, not by the code."""
    first = Path("/proc/stat").read_text().splitlines()[0].split()
    return [int(v) for v in first[1:9]]


def descendants(root: int) -> list[int]:
    """`root` and every process below it now (from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue  # ended meanwhile
    tree, frontier = [root], [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        tree += children
        frontier += children
    return tree


def resident_bytes(pid: int) -> int:
    """Bytes resident in one process now (0 if it has ended)."""
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError):
        return 0


def machine() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    memory = next(line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
    return f"{os.cpu_count()} cores, {cpu}, {int(memory.split()[1]) // 1024 // 1024} GiB, Python {platform.python_version()}"


def commit() -> str:
    done = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="about 2 million claims")
    parser.add_argument("--claims", type=int, default=20_000_000)
    parser.add_argument("--work", type=Path, default=Path("/tmp/kuhr-bench"))
    parser.add_argument("--order", choices=["time", "person"], default="time", help="the source's order (synth --order)")
    parser.add_argument("--no-naive", action="store_true", help="skip the naive script")
    parser.add_argument("--arrow-threads", type=int, default=0,
                        help="Arrow's CPU threads in each process that delivers (OMP_NUM_THREADS; 0: Arrow's default)")
    parser.add_argument("--scan-slots", type=int, default=0,
                        help="slots of the source_scan pool in the bench's instance (0: its dagster.yaml's)")
    parser.add_argument("--multiprocess", action="store_true",
                        help="also deliver with --executor multiprocess (a process per step), alternating")
    parser.add_argument("--no-record", action="store_true", help="do not write bench/RESULTS.md")
    parser.add_argument("--repeat", type=int, default=1,
                        help="run deliver and the floors this many times, alternating (the median is reported)")
    parser.add_argument("--instance", choices=["postgres", "sqlite"], default="postgres",
                        help="Dagster instance storage: production's PostgreSQL (deploy/dagster.yaml; a new "
                             "database kuhr_bench on DAGSTER_PG_HOST, default 127.0.0.1) or SQLite in DAGSTER_HOME")
    args = parser.parse_args()
    claims = 2_000_000 if args.small else args.claims
    persons = int(claims / CLAIMS_PER_PERSON)
    work = args.work / f"{claims}-{args.order}"
    source = work / "source"
    env = {**os.environ, "DAGSTER_HOME": str(work / "dagster_home"), "KUHR_DELIVERIES": str(work / "deliveries"),
           "KUHR_PSEUDONYM_KEY_FILE": str(work / "keys" / "pseudonym.key"),
           "KUHR_SIGNING_KEY_FILE": str(work / "keys" / "signing.pem"), "DAGSTER_DG_UPDATE_CHECK_ENABLED": "0"}
    for folder in ("dagster_home", "deliveries", "keys", "out"):
        shutil.rmtree(work / folder, ignore_errors=True)
    (work / "dagster_home").mkdir(parents=True)
    if args.instance == "postgres":
        env.update(new_postgres_database(work))
        shutil.copy(REPO / "deploy" / "dagster.yaml", work / "dagster_home" / "dagster.yaml")
    else:
        (work / "dagster_home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    (work / "out").mkdir()
    cli = str(BIN / "kuhr-pipeline")
    subprocess.run([cli, "keys", "init"], env=env, check=True, stdout=subprocess.DEVNULL)
    # A data manager's Dagster instance exists already: its storage is created here, untimed.
    subprocess.run([sys.executable, "-c", "import dagster; dagster.DagsterInstance.get().dispose()"], env=env, check=True)
    if args.scan_slots:
        subprocess.run([sys.executable, "-c", "import dagster; i = dagster.DagsterInstance.get(); "
                        f"i.event_log_storage.set_concurrency_slots('source_scan', {args.scan_slots}); i.dispose()"],
                       env=env, check=True)
    deliver_env = {**env, "OMP_NUM_THREADS": str(args.arrow_threads)} if args.arrow_threads else env

    results: dict[str, dict[str, float]] = {}
    if not source.exists():
        results["synth"] = timed("synth", [cli, "synth", "--out", str(source), "--persons", str(persons),
                                           "--from-year", "2019", "--to-year", "2024", "--order", args.order],
                                   env, work / "synth.log")
    actual = int(subprocess.run([sys.executable, "-c", "import pyarrow.dataset as ds,sys;"
                                 f"print(ds.dataset({str(source)!r}, partitioning='hive').count_rows())"],
                                capture_output=True, text=True, check=True).stdout)
    cohort_file = work / "cohort-ids.txt"  # synthetic ids, for the floor only; not timed
    subprocess.run([sys.executable, str(BENCH / "cohort_ids.py"), str(source), str(cohort_file)], check=True, env=env)
    commands = {  # name: (command, log)
        "deliver": ([cli, "deliver", "--again", str(BENCH / "benchmark-application.yaml"), "--source", str(source)],
                    "deliver.log"),
        "floor": ([sys.executable, str(BENCH / "floor.py"), str(source), str(cohort_file),
                   str(work / "out" / "floor.parquet")], "floor.log"),
        "floor, read as deliver reads": ([sys.executable, str(BENCH / "floor.py"), str(source), str(cohort_file),
                                          str(work / "out" / "floor_tuned.parquet"), "--as-deliver-reads"],
                                         "floor_tuned.log"),
    }
    if args.multiprocess:
        commands["deliver, a process per step"] = ([*commands["deliver"][0], "--executor", "multiprocess"],
                                                   "deliver_multiprocess.log")
    # The first delivery from a source checks its claim ids, a year at a time, and records the years
    # (source/claim_ids.py): timed on its own; the rounds are the deliveries that follow it.
    results["deliver, the first from this source"] = timed("deliver", commands["deliver"][0], deliver_env,
                                                           work / "deliver_first.log")
    rounds: list[dict[str, dict[str, float]]] = []
    steps_of: dict[str, list[str]] = {}
    for _ in range(args.repeat):  # alternating, so that a slow spell of the machine hits all of them
        this: dict[str, dict[str, float]] = {}
        for name, (command, log) in commands.items():
            this[name] = timed(name, command, deliver_env if name.startswith("deliver") else env, work / log)
            if name.startswith("deliver"):  # the last round's steps of each way to deliver
                rows = subprocess.run([sys.executable, str(BENCH / "steps.py")], env=env, capture_output=True,
                                      text=True, check=True).stdout.splitlines()
                label = name.removeprefix("deliver").removeprefix(", ")
                steps_of[name] = [row.replace("| ", f"| {label}: ", 1) if label else row for row in rows]
        rounds.append(this)
    for name in commands:
        results[name] = median_run([r[name] for r in rounds])
    paired = sorted(r["deliver"]["seconds"] / r["floor"]["seconds"] for r in rounds)  # each to the floor beside it
    if not args.no_naive:
        results["naive"] = timed("naive", [sys.executable, str(BENCH / "naive.py"), str(source),
                                           str(work / "out" / "naive.parquet")], env, work / "naive.log")
    steps = "\n".join(row for rows in steps_of.values() for row in rows)
    report(results, paired, actual, " ".join(["bench/run.py", *sys.argv[1:]]), args.no_record, steps, args.instance,
           args.order)


def median_run(runs: list[dict[str, float]]) -> dict[str, float]:
    """The run with the median wall time, with the fastest and slowest times beside it."""
    ordered = sorted(runs, key=lambda r: r["seconds"])
    return {**ordered[(len(ordered) - 1) // 2], "fastest": ordered[0]["seconds"], "slowest": ordered[-1]["seconds"],
            "runs": len(ordered)}


def new_postgres_database(work: Path) -> dict[str, str]:
    """A new, empty database for the run's instance (dropped first if an earlier run left it), and
    the variables deploy/dagster.yaml reads."""
    import psycopg2

    env = {"DAGSTER_PG_HOST": os.environ.get("DAGSTER_PG_HOST", "127.0.0.1"),
           "DAGSTER_PG_PORT": os.environ.get("DAGSTER_PG_PORT", "5432"),
           "DAGSTER_PG_USER": os.environ.get("DAGSTER_PG_USER", "postgres"),
           "DAGSTER_PG_PASSWORD": os.environ.get("DAGSTER_PG_PASSWORD", "unused-trust-auth"),
           "DAGSTER_PG_DB": "kuhr_bench", "DAGSTER_COMPUTE_LOG_DIR": str(work / "compute_logs")}
    admin = psycopg2.connect(host=env["DAGSTER_PG_HOST"], port=int(env["DAGSTER_PG_PORT"]),
                             user=env["DAGSTER_PG_USER"], password=env["DAGSTER_PG_PASSWORD"], dbname="postgres")
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute('DROP DATABASE IF EXISTS "kuhr_bench" WITH (FORCE)')
            cursor.execute('CREATE DATABASE "kuhr_bench"')
    finally:
        admin.close()
    return env


def report(
    results: dict[str, dict[str, float]], paired: list[float], claims: int, command: str, no_record: bool, steps: str,
    instance: str, order: str,
) -> None:
    lines = [f"## {datetime.now(UTC):%Y-%m-%d %H:%M} UTC — {claims:,} claims, source in {order} order", "",
             f"Command: `.venv/bin/python {command}` at commit {commit()}  ", f"Machine: {machine()}  ",
             f"Dagster instance: {'PostgreSQL' if instance == 'postgres' else 'SQLite'}", "",
             "| step | wall time (s) | peak RSS (GB) | all processes (GB) | CPU stolen |", "|---|---:|---:|---:|---:|"]
    for name, r in results.items():
        spread = f" ({r['fastest']:.1f}–{r['slowest']:.1f}, {r['runs']:.0f} runs)" if r.get("runs", 1) > 1 else ""
        lines.append(f"| {name} | {r['seconds']:.1f}{spread} | {r['rss_gb']:.2f} | {r['tree_rss_gb']:.2f} "
                     f"| {r['steal']:.0f} % |")
    lines.append("")
    if "synth" in results:
        lines.append(f"- synth: {claims / results['synth']['seconds'] / 1e6:.2f} million claims/s")
    deliver, floor = results["deliver"]["seconds"], results["floor"]["seconds"]
    if len(paired) > 1:
        lines.append(f"- deliver / floor of the same round: {paired[0]:.2f}–{paired[-1]:.2f}×")
    lines.append(f"- deliver / floor: {deliver / floor:.2f}× (goal ≤ 2×); deliver / floor read as deliver reads: "
                 f"{deliver / results['floor, read as deliver reads']['seconds']:.2f}×")
    if "naive" in results:
        lines.append(f"- naive / deliver: {results['naive']['seconds'] / deliver:.1f}× (goal ≥ 10×)")
    lines.append(f"- deliver peak RSS: {results['deliver']['rss_gb']:.2f} GB, all its processes together "
                 f"{results['deliver']['tree_rss_gb']:.2f} GB (goal ≤ 1.5 GB at 20 M claims)")
    lines += ["", "Inside deliver (the last run's steps in the Dagster instance):", "",
              "| step | seconds |", "|---|---:|", *steps.splitlines()]
    text = "\n".join(lines) + "\n"
    print(text)
    if no_record:
        return
    path = BENCH / "RESULTS.md"
    header = "# Benchmark results (newest first)\n\nProduced by `bench/run.py`; see bench/README.md.\n\n"
    old = path.read_text().removeprefix(header) if path.exists() else ""
    path.write_text(header + text + "\n" + old)


if __name__ == "__main__":
    main()
