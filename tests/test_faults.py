"""Faults: a bad source, a bad key, an unwritable output, SIGKILL during each asset. Each gives a
clear error, no delivery, no staging debris in the deliveries folder, and a rerun that succeeds."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kuhr_pipeline.synth import generate_source
from tests.conftest import make_recipient
from tests.helpers import run_cli, write_spec
from tests.leakscan import at_rest_problems, ids_in_source, leaked

CLI = Path(sys.executable).with_name("kuhr-pipeline")
SPEC = {
    "application_id": "FAULT-1",
    "period": {"from": "2019-01-01", "to": "2020-12-31"},
    "cohort": {"entry": {"diagnoses": {"ICPC-2": ["R74", "A04", "K86"]}}},
    "variables": [
        "pasient_pseudonym",
        "pasient_kjonn",
        {"name": "behandlingstidspunkt", "as": "month"},
        "diagnosekoder",
        "egenandel",
    ],
}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pristine") / "source"
    generate_source(out, persons=500, from_year=2019, to_year=2020, seed=21)
    return out


@pytest.fixture
def setup(tmp_path: Path, keys_env: dict[str, Path], pristine: Path) -> dict[str, Path]:
    source = tmp_path / "source"
    shutil.copytree(pristine, source)
    apps = tmp_path / "applications"
    apps.mkdir()
    secret, _ = make_recipient(apps, "recipient")
    return {**keys_env, "source": source, "spec": write_spec(apps, SPEC, name="FAULT-1.yaml"), "secret": secret}


def deliveries_left(setup: dict[str, Path]) -> list[str]:
    """What is left in the application's folder: packages (prepared or released) by their id,
    anything else hidden (`.staging-…`) by its name; the spec archive is not a package."""
    folder = setup["deliveries"] / "FAULT-1"
    if not folder.exists():
        return []
    pending = folder / ".pending"
    names = [p.name for p in folder.iterdir() if p.name not in (".pending", "specs")]
    return sorted(names + ([p.name for p in pending.iterdir()] if pending.exists() else []))


def assert_nothing_published(setup: dict[str, Path]) -> None:
    left = deliveries_left(setup)
    assert not [name for name in left if not name.startswith(".")], left  # no delivery


def rerun_succeeds(setup: dict[str, Path], capsys, again: bool = False) -> Path:
    code, out, err = run_cli(
        ["deliver", setup["spec"], "--source", setup["source"], *(["--again"] if again else [])], capsys
    )
    assert code == 0, err
    assert [n for n in deliveries_left(setup) if n.startswith(".staging")] == []  # no staging debris
    return Path(out.strip())


def test_truncated_parquet_in_the_source(setup, capsys) -> None:
    victim = sorted((setup["source"] / "ar=2020").glob("*.parquet"))[0]
    original = victim.read_bytes()
    victim.write_bytes(original[: len(original) // 2])
    code, out, err = run_cli(["deliver", setup["spec"], "--source", setup["source"]], capsys)
    assert code == 3 and "Traceback" not in err
    assert err.startswith(f"error: {victim}: ") and "is not a readable Parquet file" in err
    assert "re-export the damaged file" in err and err.count("\n") == 1
    assert_nothing_published(setup)
    victim.write_bytes(original)
    rerun_succeeds(setup, capsys)


def test_corrupt_bytes_in_a_parquet_file(setup, capsys) -> None:
    victim = sorted((setup["source"] / "ar=2019").glob("*.parquet"))[0]
    original = victim.read_bytes()
    damaged = bytearray(original)
    for i in range(100, len(damaged) - 100, 997):
        damaged[i] ^= 0xFF
    victim.write_bytes(bytes(damaged))
    code, out, err = run_cli(["deliver", setup["spec"], "--source", setup["source"]], capsys)
    assert code == 3 and "Traceback" not in err
    assert err.startswith("error: ") and str(victim) in err and "not a readable Parquet" in err
    assert err.count("\n") == 1
    assert_nothing_published(setup)
    victim.write_bytes(original)
    rerun_succeeds(setup, capsys)


def test_column_of_the_wrong_type(setup, capsys) -> None:
    victim = sorted((setup["source"] / "ar=2020").glob("*.parquet"))[0]
    table = pq.read_table(victim)
    index = table.schema.get_field_index("egenandel")
    pq.write_table(table.set_column(index, "egenandel", table.column("egenandel").cast("string")), victim)
    code, out, err = run_cli(["deliver", setup["spec"], "--source", setup["source"]], capsys)
    assert code == 3 and "column egenandel" in err and "expected double" in err
    assert_nothing_published(setup)


def test_unreadable_key(setup, capsys, monkeypatch) -> None:
    monkeypatch.setenv("KUHR_SIGNING_KEY_FILE", str(setup["home"]))  # a folder, not a key
    code, out, err = run_cli(["deliver", setup["spec"], "--source", setup["source"]], capsys)
    assert code == 3 and "KUHR_SIGNING_KEY_FILE" in err and "is a folder" in err
    assert_nothing_published(setup)
    assert not (setup["home"] / "staging").exists()


def test_output_folder_that_cannot_be_written(setup, capsys, monkeypatch, tmp_path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the deliveries folder should be")
    monkeypatch.setenv("KUHR_DELIVERIES", str(blocker / "deliveries"))
    code, out, err = run_cli(["deliver", setup["spec"], "--source", setup["source"]], capsys)
    assert code == 1 and "KUHR_DELIVERIES" in err and "cannot be written" in err and "Traceback" not in err
    monkeypatch.setenv("KUHR_DELIVERIES", str(setup["deliveries"]))
    rerun_succeeds(setup, capsys)


@pytest.mark.parametrize(
    "kill_on",
    [
        "application: FAULT-1 checked",
        "cohort: scanning",
        "extract: selecting",
        "delivery: preparing",
        "encrypting data/claims",
        "encrypting data/attrition",
    ],
)
@pytest.mark.parametrize("delivery_format", ["parquet", "csv"])
def test_sigkill_during_each_asset(setup, capsys, kill_on, delivery_format, tmp_path) -> None:
    if delivery_format == "csv":  # CSV is converted in staging before it is encrypted
        write_spec(setup["spec"].parent, {**SPEC, "delivery.format": "csv"}, name="FAULT-1.yaml")
    env = {**os.environ}
    process = subprocess.Popen(
        [str(CLI), "deliver", str(setup["spec"]), "--source", str(setup["source"])],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    seen = []
    for line in process.stderr:
        seen.append(line)
        if kill_on in line:
            process.send_signal(signal.SIGKILL)
            break
    process.wait(timeout=120)
    assert process.returncode == -signal.SIGKILL, "".join(seen)[-2000:]
    assert_nothing_published(setup)
    assert at_rest_problems(setup["home"]) == []  # what the kill left: sealed, owner-only
    delivered = rerun_succeeds(setup, capsys)
    assert not (setup["home"] / "staging" / "FAULT-1").exists()

    # the tables after an interrupted run equal those of an uninterrupted one
    again = rerun_succeeds(setup, capsys, again=True)
    tables = []
    for folder in (delivered, again):
        plain = tmp_path / folder.name
        code, _, err = run_cli(
            ["decrypt", folder, "--sk", setup["secret"], "--out", plain, "--signer-pub", setup["signing_pub"]], capsys
        )
        assert code == 0, err
        tables.append((plain / f"claims.{delivery_format}").read_bytes())
    if delivery_format == "parquet":
        tables = [pq.read_table(pa.BufferReader(t)) for t in tables]
        assert tables[0].equals(tables[1])
    else:
        assert tables[0] == tables[1] and tables[0].count(b"\n") > 10
    code, _, err = run_cli(["audit", "verify"], capsys)
    assert code == 0, err


def start_deliver(setup: dict[str, Path], *options: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(CLI), "deliver", str(setup["spec"]), "--source", str(setup["source"]), *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def signal_on(process: subprocess.Popen[str], line_part: str, signum: int) -> list[str]:
    """Send `signum` when the process logs a line holding `line_part`; the lines read until then.
    A process that hangs instead is killed after two minutes (the test then fails, not hangs)."""
    assert process.stderr is not None
    seen = []
    watchdog = threading.Timer(120, process.kill)
    watchdog.start()
    try:
        for line in process.stderr:
            seen.append(line)
            if line_part in line:
                process.send_signal(signum)
                return seen
    finally:
        watchdog.cancel()
    raise AssertionError("never logged " + line_part + ": " + "".join(seen)[-2000:])


def assert_nothing_at_rest(setup: dict[str, Path]) -> None:
    """No national id anywhere in DAGSTER_HOME or the deliveries, no table in the clear, nothing
    under staging readable by group or others."""
    assert leaked(ids_in_source(setup["source"]), [setup["home"], setup["deliveries"]]) == set()
    assert at_rest_problems(setup["home"]) == []


def test_a_run_killed_in_pass_1_does_not_block_the_next(setup, capsys) -> None:
    """With the project's dagster.yaml (one source_scan slot): the killed run held the slot; the
    next delivery marks that run failed, frees the slot and completes (a hang fails the timeout)."""
    process = start_deliver(setup)
    signal_on(process, "pass 1", signal.SIGKILL)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    staged = list((setup["home"] / "staging" / "FAULT-1").iterdir())
    assert staged and at_rest_problems(setup["home"]) == []  # what the killed run left is sealed, owner-only
    again = subprocess.run(
        [str(CLI), "deliver", str(setup["spec"]), "--source", str(setup["source"])],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 0, again.stderr[-2000:]
    assert "its process is gone; marked failed, its pool slots freed" in again.stdout + again.stderr
    assert len([n for n in deliveries_left(setup) if not n.startswith(".")]) == 1
    assert not (setup["home"] / "staging" / "FAULT-1").exists()
    assert_nothing_at_rest(setup)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_or_ctrl_c_stops_deliver(setup, capsys, signum) -> None:
    import dagster as dg

    process = start_deliver(setup)
    signal_on(process, "pass 1", signum)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 128 + signum, err[-2000:]
    name = signal.Signals(signum).name
    assert err.strip().splitlines()[-1].startswith(f"error: {setup['spec']}: run ")
    assert f"stopped by {name}; the run is canceled and its staging removed; nothing was delivered" in err
    assert "Traceback" not in err
    assert deliveries_left(setup) == []
    assert not (setup["home"] / "staging" / "FAULT-1").exists()
    assert_nothing_at_rest(setup)
    with dg.DagsterInstance.from_config(str(setup["home"])) as instance:
        runs = instance.get_runs()
        assert [r.status for r in runs] == [dg.DagsterRunStatus.CANCELED]
        assert instance.event_log_storage.get_concurrency_run_ids() == set()
    rerun_succeeds(setup, capsys)


def step_processes_of(pid: int) -> set[int]:
    """The multiprocessing processes below `pid` (from /proc): the multiprocess executor's steps."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rpartition(")")[2].split()[1])
        except (OSError, ValueError):
            continue
    below, grew = {pid}, True
    while grew:
        more = {child for child, parent in parents.items() if parent in below} - below
        below |= more
        grew = bool(more)
    steps = set()
    for child in below - {pid}:
        try:
            if b"multiprocessing" in Path(f"/proc/{child}/cmdline").read_bytes():
                steps.add(child)
        except OSError:
            continue
    return steps


def running(pid: int) -> bool:
    """The process exists and has not ended (a zombie has: its parent has yet to reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def test_sigterm_stops_the_step_processes_of_a_multiprocess_deliver(setup, capsys) -> None:
    """With a process per step, the step process is ended too: it cannot go on and publish."""
    import dagster as dg

    process = start_deliver(setup, "--executor", "multiprocess")
    signal_on(process, "pass 1", signal.SIGTERM)
    steps = step_processes_of(process.pid)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert "stopped by SIGTERM; the run is canceled and its staging removed; nothing was delivered" in err
    left = [pid for pid in steps if running(pid)]
    assert steps and not left, left  # ended, not orphaned
    assert deliveries_left(setup) == []
    assert not (setup["home"] / "staging" / "FAULT-1").exists()
    with dg.DagsterInstance.from_config(str(setup["home"])) as instance:
        assert [r.status for r in instance.get_runs()] == [dg.DagsterRunStatus.CANCELED]
        assert instance.event_log_storage.get_concurrency_run_ids() == set()
    rerun_succeeds(setup, capsys)


def data_plaintext(delivery: Path) -> dict[str, str]:
    """The plaintext hash of each data file but the validation summary (which names its run)."""
    files = json.loads((delivery / "manifest.json").read_text())["files"]
    return {
        f["path"]: f["plaintext_sha256"]
        for f in files
        if f["path"].startswith("data/") and "validation_summary" not in f["path"]
    }


@pytest.mark.slow  # a minute: every step of a multiprocess run imports Dagster afresh
def test_a_step_process_killed_in_pass_1_is_run_again_with_the_same_bytes(setup, capsys, tmp_path) -> None:
    """A process per step: the scan's process is SIGKILLed (as the OOM killer would) and the scan
    step's retry policy runs it again; the delivery equals one made in a single process."""
    once = tmp_path / "killed-once"
    env = {**os.environ, "KUHR_FAULT": "in-pass-1", "KUHR_FAULT_ONCE": str(once)}
    result = subprocess.run(
        [str(CLI), "deliver", str(setup["spec"]), "--source", str(setup["source"]), "--executor", "multiprocess"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert once.exists()  # a step process was killed
    in_processes = data_plaintext(Path(result.stdout.strip()))
    assert in_processes == data_plaintext(rerun_succeeds(setup, capsys, again=True))
    assert len([n for n in deliveries_left(setup) if not n.startswith(".")]) == 2


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 600 KiB tmpfs: too small for a delivery (root may mount; elsewhere the test is skipped)."""
    mountpoint = tmp_path / "small"
    mountpoint.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(mountpoint)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mountpoint
    subprocess.run(["umount", "-l", str(mountpoint)], check=False)


@pytest.mark.parametrize("fault", ["full", "read-only"])
def test_full_or_read_only_output_folder(setup, capsys, monkeypatch, small_disk, fault) -> None:
    if fault == "read-only":
        subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    else:
        free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
        (small_disk / "ballast").write_bytes(b"\0" * (free - 12 * 1024))  # 12 KiB left: too little
    monkeypatch.setenv("KUHR_DELIVERIES", str(small_disk / "deliveries"))
    code, out, err = run_cli(["deliver", setup["spec"], "--source", setup["source"]], capsys)
    assert code == 1 and "Traceback" not in err, err
    assert "KUHR_DELIVERIES" in err and ("cannot be written" in err or "writing the delivery failed" in err), err
    if fault == "full":
        left = sorted(p.name for p in (small_disk / "deliveries" / "FAULT-1").iterdir())
        assert left == [], left  # neither a delivery nor staging debris
        assert not (small_disk / "deliveries" / "audit.jsonl").exists()
    monkeypatch.setenv("KUHR_DELIVERIES", str(setup["deliveries"]))
    rerun_succeeds(setup, capsys)


def test_sigkill_during_statistics(setup, capsys) -> None:
    statistics_spec = {
        **SPEC,
        "data_level": "statistics",
        "statistics": {"group_by": ["ar", "pasient_kjonn"], "measures": ["persons", "claims"], "min_cell": 5},
    }
    spec = write_spec(setup["spec"].parent, statistics_spec, name="FAULT-1.yaml", remove=["variables"])
    process = subprocess.Popen(
        [str(CLI), "deliver", str(spec), "--source", str(setup["source"])],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    for line in process.stderr:
        if "statistics: the cube" in line:
            process.send_signal(signal.SIGKILL)
            break
    process.wait(timeout=120)
    assert process.returncode == -signal.SIGKILL
    assert_nothing_published(setup)
    code, out, err = run_cli(["deliver", spec, "--source", setup["source"]], capsys)
    assert code == 0, err
    assert [n for n in deliveries_left(setup) if n.startswith(".staging")] == []


def test_no_telemetry_whatever_the_instance_file_says(setup, capsys) -> None:
    """An instance file without a `telemetry` section means "on" to Dagster; a delivery still
    writes no .telemetry folder."""
    config = setup["home"] / "dagster.yaml"
    config.write_text(config.read_text().replace("telemetry:\n  enabled: false\n", ""))
    assert "telemetry" not in config.read_text()
    rerun_succeeds(setup, capsys)
    assert not (setup["home"] / ".telemetry").exists()


def test_clean_removes_what_a_killed_run_left(setup, capsys) -> None:
    from kuhr_pipeline.locks import application_lock

    process = start_deliver(setup)
    signal_on(process, "pass 1", signal.SIGKILL)
    process.wait(timeout=60)
    staging = setup["home"] / "staging" / "FAULT-1"
    assert staging.exists()
    with application_lock("FAULT-1", print):  # a delivery of FAULT-1 running
        code, out, err = run_cli(["clean"], capsys)
    assert code == 0 and out == "FAULT-1: skipped, a delivery of it is running\n" and staging.exists()
    code, out, err = run_cli(["clean", "FAULT-1"], capsys)
    assert code == 0 and out == "FAULT-1: staging removed\n" and not staging.exists()
    code, out, err = run_cli(["clean", "../x"], capsys)
    assert code == 2 and "'../x' is not an application id" in err and "Traceback" not in err


def test_clean_removes_a_publish_killed_before_its_audit_line(setup, capsys) -> None:
    """A kill while the package is being encrypted leaves `.staging-<id>` in the deliveries
    folder: `clean` removes it (no writer, no audit line names it); nothing else is touched."""
    process = start_deliver(setup)
    signal_on(process, "encrypting data/claims", signal.SIGKILL)
    process.wait(timeout=60)
    left = [n for n in deliveries_left(setup) if n.startswith(".staging-") and not n.endswith(".lock")]
    assert len(left) == 1
    code, out, err = run_cli(["clean"], capsys)
    assert code == 0 and f"FAULT-1: removed {left[0]}, a publish that was killed before its audit line" in out
    assert [n for n in deliveries_left(setup) if n.startswith(".staging-")] == []
    code, out, _ = run_cli(["clean", "FAULT-1"], capsys)
    assert code == 0 and out == "FAULT-1: nothing to remove\n"


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_a_run_waiting_for_the_pool_says_who_holds_it_and_sleeps(setup, capsys) -> None:
    """Another live run holds the one source_scan slot: deliver says which run (and application)
    holds it, uses next to no CPU while it waits, and delivers once the slot is free."""
    import dagster as dg

    from kuhr_pipeline.defs.stale_runs import PROCESS_TAG
    from kuhr_pipeline.processes import this_process

    with dg.DagsterInstance.from_config(str(setup["home"])) as instance:
        holder = instance.add_run(
            dg.DagsterRun(
                job_name="deliver_application",
                status=dg.DagsterRunStatus.STARTED,
                tags={"dagster/partition": "OTHER-1", PROCESS_TAG: this_process()},
            )
        )
        storage = instance.event_log_storage
        storage.initialize_concurrency_limit_to_default("source_scan")  # as Dagster does before a claim
        assert storage.claim_concurrency_slot("source_scan", holder.run_id, "cohort").is_claimed
        process = start_deliver(setup)
        seen = signal_on(process, "waiting for pool source_scan", 0)  # signal 0: nothing sent
        assert f"held by run {holder.run_id[:8]} (application OTHER-1)" in seen[-1]
        before = _cpu_seconds(process.pid)
        time.sleep(3)
        assert _cpu_seconds(process.pid) - before < 0.5  # asleep, not spinning
        storage.free_concurrency_slots_for_run(holder.run_id)
        out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err[-2000:]
    assert len([n for n in deliveries_left(setup) if not n.startswith(".")]) == 1
