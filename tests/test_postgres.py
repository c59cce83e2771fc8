"""Instance storage on the machine's real PostgreSQL, with the production deploy/dagster.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import run_cli, small_application


def test_cli_delivery_is_recorded_in_postgres(tmp_path: Path, keys_env, postgres_home, capsys) -> None:
    source, spec = small_application(tmp_path, "PG-0001")
    code, out, err = run_cli(["deliver", spec, "--source", source], capsys)
    assert code == 0, err
    runs = postgres_home["query"](
        "select r.status from runs r join run_tags t on t.run_id = r.run_id "
        "where t.key = 'kuhr/application_id' and t.value = 'PG-0001'"
    )
    assert runs == [("SUCCESS",)]
    materialised = postgres_home["query"](
        "select count(*) from event_logs where dagster_event_type = 'ASSET_MATERIALIZATION'"
    )
    assert materialised[0][0] >= 4
    assert not (postgres_home["home"] / "history").exists()  # nothing went to SQLite


@pytest.mark.parametrize("table", ["runs", "event_logs", "dynamic_partitions"])
def test_dagster_tables_exist_after_a_run(tmp_path: Path, keys_env, postgres_home, capsys, table) -> None:
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        instance.add_dynamic_partitions("applications", ["PG-0002"])
    assert postgres_home["query"](f"select count(*) from {table}")[0][0] >= 0
