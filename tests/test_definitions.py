"""The Dagster code location loads, with the contract's names."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from kuhr_pipeline.definitions import defs
from tests.conftest import REPO


def test_definitions_load_with_contract_names() -> None:
    assert isinstance(defs, dg.Definitions)
    job = defs.resolve_job_def("deliver_application")
    assert job.partitions_def is not None and job.partitions_def.name == "applications"  # type: ignore[attr-defined]
    keys = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {"application", "cohort", "extract", "delivery"} <= keys
    checks = {key.name for key in defs.resolve_asset_graph().asset_check_keys}
    assert {"cohort_is_not_empty", "extract_passes_validation"} <= checks


def test_dagster_definitions_validate(tmp_path: Path) -> None:
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    dagster = Path(sys.executable).with_name("dagster")
    result = subprocess.run(
        [str(dagster), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "All code locations passed validation" in result.stderr + result.stdout


LAUNCHES = {
    "dg launch": ["dg", "launch", "--assets", "*delivery"],
    "dagster asset materialize": ["dagster", "asset", "materialize", "--select", "*delivery"],
}


@pytest.mark.parametrize("launch", LAUNCHES)
def test_cli_materialisation_of_one_partition(tmp_path: Path, keys_env: dict[str, Path], launch: str) -> None:
    """`dg launch --assets '*delivery' --partition ID` from the README (and Dagster's older
    `dagster asset materialize`) run in one process, as `deliver` does, and the run is tagged."""
    from tests.helpers import small_application

    source, spec = small_application(tmp_path, "TEST-0001", seed=5)
    with dg.DagsterInstance.get() as instance:
        instance.add_dynamic_partitions("applications", ["TEST-0001"])
    env = {**os.environ, "KUHR_APPLICATIONS": str(spec.parent), "KUHR_SOURCE": str(source)}
    program, *arguments = LAUNCHES[launch]
    command = [str(Path(sys.executable).with_name(program)), *arguments, "-m", "kuhr_pipeline.definitions"]
    result = subprocess.run(
        [*command, "--partition", "TEST-0001"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    delivered = list((keys_env["deliveries"] / "TEST-0001" / ".pending").glob("2*/manifest.json"))
    assert len(delivered) == 1
    with dg.DagsterInstance.get() as instance:
        (run,) = instance.get_runs()
        assert run.job_name == "__ASSET_JOB"
        events = instance.all_logs(run.run_id)
        engine = [e.message for e in events if e.dagster_event is not None and e.dagster_event.is_engine_event]
        assert any(m.startswith("Executing steps in process") for m in engine), engine  # as `deliver`: one process
        assert run.tags["kuhr/application_id"] == "TEST-0001"  # tagged by the application step
        assert json.loads(delivered[0].read_text())["spec_sha256"].startswith(run.tags["kuhr/spec_sha256"])
    if launch == "dg launch":
        assert "Warning" not in result.stderr, result.stderr[:2000]
    again = subprocess.run(  # the one gate: an unchanged spec already prepared is refused in its step
        [*command, "--partition", "TEST-0001"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )
    assert again.returncode != 0 and "is unchanged since delivery" in again.stderr + again.stdout
    assert len(list((keys_env["deliveries"] / "TEST-0001" / ".pending").glob("2*"))) == 1
