"""The Dagster code location loads, with the contract's names."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

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
