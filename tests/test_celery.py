"""Scale-out on Celery: a real worker process (RabbitMQ broker) executes the job's steps."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
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


def test_steps_run_on_a_celery_worker(
    tmp_path: Path, keys_env: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import dagster as dg

    database = PostgresDatabase()
    env = {**os.environ, **database.home(tmp_path / "home"), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    source, spec = small_application(tmp_path, "CEL-0001", seed=9)
    env.update({"KUHR_SOURCE": str(source), "KUHR_APPLICATIONS": str(spec.parent)})
    config = tmp_path / "celery.yaml"
    config.write_text(f"broker: '{BROKER}'\nbackend: 'rpc://'\n")
    worker_log = tmp_path / "worker.log"
    with worker_log.open("w") as log:
        worker = subprocess.Popen(
            [
                str(BIN / "dagster-celery"),
                "worker",
                "start",
                "-A",
                "dagster_celery.app",
                "-y",
                str(config),
                "-n",
                f"kuhr-test-{os.getpid()}@localhost",
                "-l",
                "INFO",
            ],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # `dagster-celery worker start` runs `celery` as a child: stop the group
        )
    try:
        for key, value in env.items():
            if key.startswith(("DAGSTER_", "KUHR_")):
                monkeypatch.setenv(key, value)  # restored after the test
        with dg.DagsterInstance.get() as instance:
            instance.add_dynamic_partitions("applications", ["CEL-0001"])
        run_config = {
            "execution": {"config": {"broker": BROKER, "backend": "rpc://"}},
            "ops": {"application": {"config": {"spec_path": str(spec)}}},
        }
        (tmp_path / "run.json").write_text(json.dumps(run_config))
        wait_until(lambda: " ready." in worker_log.read_text(), "the worker to connect to the broker", 120)
        result = subprocess.run(
            [
                str(BIN / "dagster"),
                "job",
                "execute",
                "-m",
                "kuhr_pipeline.definitions",
                "-j",
                "deliver_application_celery",
                "-c",
                str(tmp_path / "run.json"),
                "--tags",
                json.dumps({"dagster/partition": "CEL-0001"}),
            ],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, (result.stderr[-3000:], worker_log.read_text()[-3000:])
        delivered = list((keys_env["deliveries"] / "CEL-0001").glob("2*/manifest.json"))
        assert len(delivered) == 1
        worker_text = worker_log.read_text()
        assert "execute_plan" in worker_text and "succeeded" in worker_text, worker_text[-3000:]
        assert database.query("select status from runs") == [("SUCCESS",)]
        # the same spec, key and source delivered in process: the same plaintext in every data file
        # but the validation summary, which names its run
        in_process = subprocess.run(
            [str(BIN / "kuhr-pipeline"), "deliver", str(spec), "--out", str(tmp_path / "in-process"), "-q"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert in_process.returncode == 0, in_process.stderr[-3000:]
        manifests = [delivered[0], Path(in_process.stdout.strip()) / "manifest.json"]
        hashes = [
            {
                f["path"]: f["plaintext_sha256"]
                for f in json.loads(m.read_text())["files"]
                if f["path"].startswith("data/") and "validation_summary" not in f["path"]
            }
            for m in manifests
        ]
        assert hashes[0] == hashes[1] and any("claims" in path for path in hashes[0])
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=30)
            wait_until(lambda: group_gone(worker.pid), "the worker's children to stop", 30)
        except (subprocess.TimeoutExpired, AssertionError):
            os.killpg(worker.pid, signal.SIGKILL)
        database.drop()
