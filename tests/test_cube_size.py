"""A statistics cube that could exceed KUHR_MAX_CELLS is refused before it is built, for
estimates and deliveries alike; the bound's edge is pinned."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from kuhr_pipeline.disclosure.cube import MAX_CELLS, require_cube_size
from kuhr_pipeline.errors import KuhrError
from tests.helpers import run_cli, small_application, staging_in, write_spec


def _claims(folder) -> tuple:
    staging = staging_in(folder)
    path = staging.path("claims.arrow")
    table = pa.table({"pasient_kjonn": pa.array([1, 2, 1, 2], pa.int8()), "ar": pa.array([2019, 2019, 2020, 2020])})
    writer = staging.arrow_writer(path, table.schema)
    writer.write(table)
    writer.close()
    return staging, path


def test_the_bound_is_distinct_values_plus_the_margin_multiplied(tmp_path) -> None:
    assert MAX_CELLS == 200_000
    staging, path = _claims(tmp_path)
    group_by = [("pasient_kjonn", "exact"), ("ar", "exact")]
    require_cube_size(staging, path, group_by, 9)  # (2 + 1) × (2 + 1): exactly the limit passes
    with pytest.raises(KuhrError) as refused:
        require_cube_size(staging, path, group_by, 8)
    assert "more than 8 cells" in str(refused.value) and "KUHR_MAX_CELLS" in str(refused.value)


def test_an_eight_dimension_timestamp_cube_is_refused_without_being_built(tmp_path, keys_env, capsys) -> None:
    source, spec = small_application(tmp_path, "CUBE-1", seed=41)
    dimensions = [
        {"name": "behandlingstidspunkt", "as": "timestamp"},
        "pasient_kjonn",
        {"name": "pasient_alder", "as": "exact"},
        {"name": "pasient_bostedskommune", "as": "kommune"},
        "behandler_praksistype",
        {"name": "behandler_praksiskommune", "as": "kommune"},
        "diagnosekodeverk",
        "ar",
    ]
    draft = write_spec(
        spec.parent,
        {
            "application_id": "CUBE-1",
            "approval.status": "draft",
            "data_level": "statistics",
            "variables": None,
            "statistics": {"group_by": dimensions, "measures": ["persons", "claims"], "min_cell": 5},
        },
        name="CUBE-1.yaml",
    )
    code, out, err = run_cli(["estimate", draft, "--source", source, "--json"], capsys)
    assert code == 2 and json.loads(out)["ok"] is False, err  # --json: the refusal as an object, no estimate
    assert "statistics.group_by: KUHR_MAX_CELLS: the table would have more than 200,000 cells" in err
    assert "Traceback" not in err
    log = (
        [json.loads(x) for x in (keys_env["deliveries"] / "audit.jsonl").read_text().splitlines()]
        if (keys_env["deliveries"] / "audit.jsonl").exists()
        else []
    )
    assert log == []  # refused: no estimate answered
