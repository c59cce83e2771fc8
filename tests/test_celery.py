"""Where the steps run changes nothing delivered: in process, a process per step, or Celery workers
(RabbitMQ broker), and a step whose worker process is killed is run again with the same result."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import REPO, PostgresDatabase
from tests.helpers import small_application

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
BROKER = "pyamqp://guest:guest@127.0.0.1:5672//"


def wait_until(ready, what: str, timeout: float) -> None:
    """Polls `ready()` every 0.2 s until it holds; fails naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


def group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


@contextmanager
def celery_workers(tmp_path: Path, env: dict[str, str], count: int) -> Iterator[list[Path]]:
    """`count` Celery workers started as deploy/README.md says (deploy/celery.yaml); yields their logs."""
    workers, logs = [], []
    try:
        for n in range(count):
            logs.append(tmp_path / f"worker-{n}.log")
            with logs[-1].open("w") as log:
                workers.append(
                    subprocess.Popen(
                        [
                            *(str(BIN / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app"),
                            *("-y", str(REPO / "deploy" / "celery.yaml")),
                            *("-n", f"kuhr-test-{os.getpid()}-{n}@localhost", "-l", "INFO"),
                            *("-q", env["KUHR_CELERY_QUEUE"]),
                        ],
                        cwd=REPO,
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,  # `worker start` runs `celery` as a child: stop the group
                    )
                )
        for log in logs:
            wait_until(lambda log=log: " ready." in log.read_text(), f"{log.name} to connect to the broker", 120)
        yield logs
    finally:
        for worker in workers:
            os.killpg(worker.pid, signal.SIGTERM)
        for worker in workers:
            try:
                worker.wait(timeout=30)
                wait_until(lambda w=worker: group_gone(w.pid), "the worker's children to stop", 30)
            except (subprocess.TimeoutExpired, AssertionError):
                os.killpg(worker.pid, signal.SIGKILL)


def deliver(spec: Path, out: Path, env: dict[str, str], executor: str) -> dict[str, str]:
    """`kuhr-pipeline deliver --executor …` into `out` (the workers' deliveries folder too: a
    deployment's own); the plaintext hash of each data file but the validation summary (which
    names its run)."""
    result = subprocess.run(
        [str(BIN / "kuhr-pipeline"), "deliver", str(spec), "--out", str(out), "-q", "--executor", executor],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, (executor, result.stderr[-3000:])
    manifest = json.loads((Path(result.stdout.strip()) / "manifest.json").read_text())
    return {
        f["path"]: f["plaintext_sha256"]
        for f in manifest["files"]
        if f["path"].startswith("data/") and "validation_summary" not in f["path"]
    }


@pytest.fixture
def celery_env(tmp_path: Path, keys_env: dict[str, Path]) -> Iterator[tuple[dict[str, str], Path, PostgresDatabase]]:
    """Instance storage on PostgreSQL (shared by the CLI and the workers), a small source and spec."""
    database = PostgresDatabase()
    env = {**os.environ, **database.home(tmp_path / "home"), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    source, spec = small_application(tmp_path, "CEL-0001", seed=9)
    env.update({"KUHR_SOURCE": str(source), "KUHR_APPLICATIONS": str(spec.parent), "KUHR_CELERY_BROKER": BROKER})
    env.update({"KUHR_CELERY_QUEUE": f"kuhr-test-{os.getpid()}", "KUHR_DELIVERIES": str(tmp_path / "celery")})
    # The instance's tables exist before workers start, as in a deployment (deploy/README.md): two
    # workers opening a new database at once both create them, and one of them dies of it.
    subprocess.run(
        [sys.executable, "-c", "import dagster; dagster.DagsterInstance.get().dispose()"], env=env, check=True
    )
    try:
        yield env, spec, database
    finally:
        database.drop()


def test_the_same_bytes_in_process_in_a_process_per_step_and_on_two_celery_workers(
    tmp_path: Path, celery_env: tuple[dict[str, str], Path, PostgresDatabase]
) -> None:
    env, spec, database = celery_env
    with celery_workers(tmp_path, env, 2) as logs:
        on_celery = deliver(spec, tmp_path / "celery", env, "celery")
        worker_text = "".join(log.read_text() for log in logs)
    assert "execute_plan" in worker_text and "succeeded" in worker_text, worker_text[-3000:]
    in_processes = deliver(spec, tmp_path / "multiprocess", env, "multiprocess")
    in_process = deliver(spec, tmp_path / "in-process", env, "in_process")
    assert (tmp_path / "celery" / "CEL-0001" / ".pending").is_dir()  # prepared, as every run
    assert on_celery == in_processes == in_process
    assert any("claims" in path for path in in_process)
    assert sorted(database.query("select status from runs")) == [("SUCCESS",)] * 3


def test_a_step_whose_worker_process_is_killed_runs_again_with_the_same_bytes(
    tmp_path: Path, celery_env: tuple[dict[str, str], Path, PostgresDatabase]
) -> None:
    """The first process to reach pass 1's first batch is SIGKILLed (as the OOM killer would); the
    broker gives its task to a worker again, and the delivery is what an undisturbed one is."""
    env, spec, _ = celery_env
    killed = tmp_path / "killed-once"
    faulty = {**env, "KUHR_FAULT": "in-pass-1", "KUHR_FAULT_ONCE": str(killed)}
    with celery_workers(tmp_path, faulty, 2) as logs:
        on_celery = deliver(spec, tmp_path / "celery", env, "celery")
        worker_text = "".join(log.read_text() for log in logs)
    assert killed.exists(), "no step process was killed"
    assert "SIGKILL" in worker_text or "WorkerLostError" in worker_text, worker_text[-3000:]
    assert on_celery == deliver(spec, tmp_path / "in-process", env, "in_process")
    assert len(list((tmp_path / "celery").glob("*/.pending/2*"))) == 1


def test_a_worker_of_another_deployment_refuses_the_step(
    tmp_path: Path, celery_env: tuple[dict[str, str], Path, PostgresDatabase]
) -> None:
    """A worker started with another master key on the same broker and queue: it refuses the
    first step it takes; the run fails with that sentence and nothing is prepared."""
    from kuhr_pipeline.identity.new_keys import init_keys

    env, spec, _ = celery_env
    other = tmp_path / "other-keys"
    init_keys(other / "pseudonym.key", other / "signing.pem", None, other)
    foreign = {**env, "KUHR_PSEUDONYM_KEY_FILE": str(other / "pseudonym.key")}
    with celery_workers(tmp_path, foreign, 1):
        result = subprocess.run(
            [
                str(BIN / "kuhr-pipeline"),
                "deliver",
                str(spec),
                "--out",
                str(tmp_path / "celery"),
                "--executor",
                "celery",
            ],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert result.returncode == 2, result.stderr[-3000:]  # refused, as a run config naming folders is
    assert "was launched by another deployment" in result.stderr and "Traceback" not in result.stderr
    assert not list((tmp_path / "celery").glob("*/.pending/2*"))


def test_celery_without_workers_is_refused_before_the_run(
    tmp_path: Path, celery_env: tuple[dict[str, str], Path, PostgresDatabase]
) -> None:
    env, spec, database = celery_env
    env = {**env, "KUHR_CELERY_BROKER": "pyamqp://guest:secret@127.0.0.1:5672/kuhr-no-such-vhost"}
    result = subprocess.run(
        [str(BIN / "kuhr-pipeline"), "deliver", str(spec), "--executor", "celery"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 3, result.stderr
    assert "--executor celery" in result.stderr and "deploy/README.md" in result.stderr
    assert "secret" not in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "deliveries").exists()
