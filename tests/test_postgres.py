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
        "select asset_key from event_logs where dagster_event_type = 'ASSET_MATERIALIZATION' order by id"
    )
    # a person-level application: no `statistics`; one event per asset that ran
    assert [key for (key,) in materialised] == ['["application"]', '["cohort"]', '["extract"]', '["delivery"]']
    assert not (postgres_home["home"] / "history").exists()  # nothing went to SQLite


def test_a_partition_is_kept_in_postgres_and_nothing_else_is_written(tmp_path: Path, keys_env, postgres_home) -> None:
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        instance.add_dynamic_partitions("applications", ["PG-0002"])
    assert postgres_home["query"]("select partitions_def_name, partition from dynamic_partitions") == [
        ("applications", "PG-0002")
    ]
    assert postgres_home["query"]("select count(*) from runs") == [(0,)]
    assert postgres_home["query"]("select count(*) from event_logs") == [(0,)]
    assert not (postgres_home["home"] / "history").exists()  # nothing went to SQLite


def test_a_delivery_reuses_its_connections(
    tmp_path: Path, keys_env, postgres_home, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One connection per storage for the run, not a new one for every event written and every
    query (a delivery opens 14 this way, 434 with Dagster's default)."""
    import dagster as dg
    import psycopg2

    dg.DagsterInstance.get().dispose()  # the data manager's instance exists: its tables are made
    source, spec = small_application(tmp_path, "PG-0003")
    opened = 0
    connect = psycopg2.connect

    def counting_connect(*args, **kwargs):
        nonlocal opened
        opened += 1
        return connect(*args, **kwargs)

    monkeypatch.setattr(psycopg2, "connect", counting_connect)
    code, _, err = run_cli(["deliver", spec, "--source", source], capsys)
    assert code == 0, err
    assert 0 < opened <= 20, f"{opened} connections opened"
