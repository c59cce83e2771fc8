"""The sensor on a temporary applications folder, and the schedule on fixed dates."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path

import dagster as dg
import pytest

from kuhr_pipeline import clock
from kuhr_pipeline.defs import build_definitions
from kuhr_pipeline.defs.resources import KuhrPaths
from kuhr_pipeline.defs.schedules import recurring_deliveries
from kuhr_pipeline.defs.sensors import new_applications
from kuhr_pipeline.scheduling import is_due, period_label, period_start
from tests.helpers import write_spec


@pytest.fixture
def instance():
    with dg.instance_for_test() as test_instance:
        yield test_instance


def evaluate_sensor(
    instance: dg.DagsterInstance, folder: Path, cursor: str | None = None, deliveries: Path | None = None
) -> dg.SensorResult:
    paths = KuhrPaths(applications=str(folder), deliveries=str(deliveries or folder.parent / "deliveries"))
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"paths": paths})
    return new_applications(context)


def record_run(instance: dg.DagsterInstance, run_key: str) -> None:
    """A run with this run key in the instance, as the daemon leaves one after a sensor's request."""

    @dg.op
    def nothing() -> None:
        pass

    job = dg.GraphDefinition("stand_in", node_defs=[nothing]).to_job()
    instance.create_run_for_job(job, tags={"dagster/run_key": run_key})


def test_new_spec_adds_partition_and_requests_one_run(instance, spec_dir: Path) -> None:
    write_spec(spec_dir, {"application_id": "NEW-1"}, name="NEW-1.yaml")
    result = evaluate_sensor(instance, spec_dir)
    assert [r.partition_key for r in result.run_requests] == ["NEW-1"]
    assert result.run_requests[0].run_key.startswith("NEW-1:")
    assert result.run_requests[0].tags["kuhr/application_id"] == "NEW-1"
    assert "spec_path" in str(result.run_requests[0].run_config)
    assert [list(r.partition_keys) for r in result.dynamic_partitions_requests] == [["NEW-1"]]


def test_unchanged_spec_keeps_its_run_key_and_changed_spec_gets_a_new_one(instance, spec_dir: Path) -> None:
    path = write_spec(spec_dir, {"application_id": "NEW-2"}, name="NEW-2.yaml")
    first = evaluate_sensor(instance, spec_dir).run_requests[0].run_key
    instance.add_dynamic_partitions("applications", ["NEW-2"])
    again = evaluate_sensor(instance, spec_dir)
    assert again.run_requests[0].run_key == first  # Dagster runs a run key once: no second delivery
    assert again.dynamic_partitions_requests == []
    lines = path.read_text().splitlines()  # a comment, blank lines and the top keys reordered: the same spec
    path.write_text("# reviewed again by the data manager\n\n" + "\n".join([lines[1], lines[0], *lines[2:]]) + "\n")
    assert evaluate_sensor(instance, spec_dir).run_requests[0].run_key == first
    path.write_text(path.read_text().replace("Test application", "Test application, amended"))
    assert evaluate_sensor(instance, spec_dir).run_requests[0].run_key != first


def test_refused_spec_is_reported_and_does_not_stop_the_others(instance, spec_dir: Path, capsys) -> None:
    write_spec(spec_dir, {"application_id": "BAD-1", "approval.status": "withdrawn"}, name="BAD-1.yaml")
    (spec_dir / "broken.yaml").write_text("application_id: [\n")
    write_spec(spec_dir, {"application_id": "GOOD-1"}, name="GOOD-1.yaml")
    result = evaluate_sensor(instance, spec_dir)
    assert [r.partition_key for r in result.run_requests] == ["GOOD-1"]
    log = capsys.readouterr().err
    assert "approval.status" in log and "broken.yaml" in log


def test_a_refused_file_is_named_in_the_tick_once_per_version(instance, spec_dir: Path, caplog) -> None:
    bad = write_spec(spec_dir, {"application_id": "BAD-2", "approval.status": "withdrawn"}, name="BAD-2.yaml")
    first = evaluate_sensor(instance, spec_dir)
    assert first.skip_reason is not None
    assert "BAD-2.yaml: withdrawn: approval.status: is 'withdrawn'" in first.skip_reason.skip_message
    caplog.clear()
    again = evaluate_sensor(instance, spec_dir, first.cursor)  # the next tick: said already, not again
    assert again.skip_reason is not None and "BAD-2.yaml" not in again.skip_reason.skip_message
    assert "1 not deliverable: see the asset applications_overview" in again.skip_reason.skip_message
    assert "BAD-2" not in caplog.text
    bad.write_text(bad.read_text().replace("Test application", "Test application, resubmitted"))
    edited = evaluate_sensor(instance, spec_dir, again.cursor)  # a new version of the file: named again
    assert edited.skip_reason is not None and "BAD-2.yaml: withdrawn" in edited.skip_reason.skip_message


def test_a_comment_only_edit_requests_no_run(instance, spec_dir: Path) -> None:
    path = write_spec(spec_dir, {"application_id": "SAME-1"}, name="SAME-1.yaml")
    first = evaluate_sensor(instance, spec_dir)
    (request,) = first.run_requests
    record_run(instance, str(request.run_key))  # the daemon launched the run the sensor asked for
    path.write_text("# checked again, 2 December\n" + path.read_text())
    after = evaluate_sensor(instance, spec_dir, first.cursor)
    assert after.run_requests == []
    assert after.skip_reason is not None and "no new or changed approved spec" in after.skip_reason.skip_message
    path.write_text(path.read_text().replace("Test application", "Test application, amended"))
    assert [r.partition_key for r in evaluate_sensor(instance, spec_dir, after.cursor).run_requests] == ["SAME-1"]


def test_applications_overview_lists_every_spec_file_when_it_changes(instance, spec_dir: Path, tmp_path) -> None:
    write_spec(spec_dir, {"application_id": "OK-1", "delivery.schedule": "monthly"}, name="OK-1.yaml")
    write_spec(spec_dir, {"application_id": "OFF-1", "approval.status": "withdrawn"}, name="study-off.yaml")
    write_spec(spec_dir, {"application_id": "OLD-1", "approval.valid_until": "2020-12-31"}, name="OLD-1.yaml")
    first = evaluate_sensor(instance, spec_dir, deliveries=tmp_path / "deliveries")
    (event,) = first.asset_events
    assert event.asset_key == dg.AssetKey("applications_overview")
    table = event.metadata["applications"]
    assert isinstance(table, dg.TableMetadataValue)
    rows = {r.data["application_id"]: r.data for r in table.records}
    assert {k: v["status"] for k, v in rows.items()} == {"OK-1": "approved", "OFF-1": "withdrawn", "OLD-1": "expired"}
    assert rows["OFF-1"]["file"] == "study-off.yaml" and "approval.status" in rows["OFF-1"]["why"]
    assert "approval.valid_until" in rows["OLD-1"]["why"]
    assert rows["OK-1"]["last_delivery"] == "never" and "(monthly, due)" in rows["OK-1"]["next_delivery"]
    assert table.schema.columns[0].description  # the columns are described in the UI
    assert event.metadata["not_deliverable"] == dg.IntMetadataValue(2)
    unchanged = evaluate_sensor(instance, spec_dir, first.cursor, deliveries=tmp_path / "deliveries")
    assert unchanged.asset_events == []  # recorded when it changes, not every tick
    line = {"event": "delivery", "application_id": "OK-1", "delivery_id": "20261202T060000000Z-abc"}
    (tmp_path / "deliveries").mkdir()
    (tmp_path / "deliveries" / "audit.jsonl").write_text(json.dumps({**line, "time": f"{clock.today()}T06:00:00Z"}))
    (delivered,) = evaluate_sensor(
        instance, spec_dir, unchanged.cursor, deliveries=tmp_path / "deliveries"
    ).asset_events
    table = delivered.metadata["applications"]
    assert isinstance(table, dg.TableMetadataValue)
    (ok,) = [r.data for r in table.records if r.data["application_id"] == "OK-1"]
    assert ok["last_delivery"] == f"{clock.today()}T06:00:00Z (20261202T060000000Z-abc, released)"
    assert ok["next_delivery"].endswith("(monthly)")  # delivered this month: due again next month


def evaluate_schedule(instance: dg.DagsterInstance, folder: Path, deliveries: Path, when: datetime) -> list:
    context = dg.build_schedule_context(
        instance=instance,
        scheduled_execution_time=when,
        resources={"paths": KuhrPaths(applications=str(folder), deliveries=str(deliveries))},
    )
    result = recurring_deliveries(context)
    return [result] if isinstance(result, dg.SkipReason) else list(result)


def _recurring(spec_dir: Path, application_id: str, schedule: str, valid_until: str = "2030-12-31") -> None:
    write_spec(
        spec_dir,
        {
            "application_id": application_id,
            "delivery.schedule": schedule,
            "approval.decided": "2026-01-01",  # the schedule's ticks below are in 2026 and 2027
            "approval.valid_until": valid_until,
        },
        name=f"{application_id}.yaml",
    )


def _delivered(deliveries: Path, application_id: str, day: date, event: str = "prepared") -> None:
    """A package of the application on `day`, as the audit log records it (what the schedule reads)."""
    deliveries.mkdir(parents=True, exist_ok=True)
    line = {"event": event, "application_id": application_id, "delivery_id": f"{day:%Y%m%d}T060000000Z-abcdef"}
    with (deliveries / "audit.jsonl").open("a") as log:
        log.write(json.dumps({**line, "time": f"{day}T06:00:00Z", "spec_sha256": "0" * 64}) + "\n")


def test_schedule_due_not_due_and_expired(instance, spec_dir: Path, tmp_path: Path, capsys) -> None:
    deliveries = tmp_path / "deliveries"
    _recurring(spec_dir, "Q-1", "quarterly")
    _recurring(spec_dir, "M-1", "monthly")
    _recurring(spec_dir, "Y-1", "yearly", valid_until="2026-12-31")
    write_spec(spec_dir, {"application_id": "ONCE-1"}, name="ONCE-1.yaml")  # no schedule: never by the schedule
    _delivered(deliveries, "Q-1", date(2026, 10, 2))  # already prepared this quarter
    _delivered(deliveries, "M-1", date(2026, 10, 20))  # last month: due again in November
    _delivered(deliveries, "M-1", date(2026, 11, 3), event="rejected")  # a rejected package is still owed
    requests = evaluate_schedule(instance, spec_dir, deliveries, datetime(2026, 11, 25, 6, 0))
    assert sorted(r.partition_key for r in requests) == ["M-1", "Y-1"]
    # one try a day until the period's package is prepared; a deliberate repeat for the gate
    assert {r.run_key for r in requests} == {"M-1:2026-11:2026-11-25", "Y-1:2026:2026-11-25"}
    assert {r.tags["kuhr/again"] for r in requests} == {"true"}
    assert instance.has_dynamic_partition("applications", "M-1")

    # after the approval has ended, nothing is delivered, and the log says why
    later = evaluate_schedule(instance, spec_dir, deliveries, datetime(2027, 1, 4, 6, 0))
    assert "Y-1" not in {r.partition_key for r in later}
    assert "Y-1.yaml: approval expired; not delivered" in capsys.readouterr().err


def test_a_schedule_tick_without_runs_says_why(instance, spec_dir: Path, tmp_path: Path) -> None:
    deliveries = tmp_path / "deliveries"
    _recurring(spec_dir, "Q-2", "quarterly")
    _recurring(spec_dir, "Y-2", "yearly", valid_until="2026-12-31")
    _delivered(deliveries, "Q-2", date(2027, 1, 2))
    (skip,) = evaluate_schedule(instance, spec_dir, deliveries, datetime(2027, 1, 4, 6, 0))
    assert isinstance(skip, dg.SkipReason)
    assert "Q-2: quarterly delivery not due until 2027-04-01 (last 2027-01-02)" in str(skip.skip_message)
    assert "Y-2: expired: approval.valid_until: 2026-12-31 has passed" in str(skip.skip_message)


def test_period_rules() -> None:
    assert period_start("quarterly", date(2026, 11, 25)) == date(2026, 10, 1)
    assert period_label("quarterly", date(2026, 11, 25)) == "2026-Q4"
    assert is_due("monthly", date(2026, 12, 1), date(2026, 11, 30))
    assert not is_due("yearly", date(2026, 12, 1), date(2026, 1, 1))
    assert is_due("yearly", date(2026, 1, 1), None)


def test_definitions_hold_sensor_and_schedule(instance) -> None:
    defs = build_definitions()  # with a live instance: Dagster keeps the last one's state storage
    assert defs.resolve_sensor_def("new_applications").name == "new_applications"
    assert defs.resolve_schedule_def("recurring_deliveries").cron_schedule == "0 6 * * *"


def test_the_sensor_asks_the_audit_log_not_its_run_keys(instance, spec_dir: Path, tmp_path: Path) -> None:
    """A spec with a prepared (or released) package in the audit log is never requested again,
    even on an instance that holds no run of it (a new instance, run history wiped); a rejected
    one does not count."""
    from kuhr_pipeline.application import load_spec

    path = write_spec(spec_dir, {"application_id": "LOG-1"}, name="LOG-1.yaml")
    deliveries = tmp_path / "deliveries"
    deliveries.mkdir()
    sha = load_spec(path).sha256
    line = {"application_id": "LOG-1", "delivery_id": "20261202T060000000Z-abc", "spec_sha256": sha, "time": "x"}
    (deliveries / "audit.jsonl").write_text(json.dumps({**line, "event": "prepared"}) + "\n")
    assert evaluate_sensor(instance, spec_dir, deliveries=deliveries).run_requests == []
    with (deliveries / "audit.jsonl").open("a") as log:
        log.write(json.dumps({**line, "event": "rejected"}) + "\n")
    assert [r.partition_key for r in evaluate_sensor(instance, spec_dir, deliveries=deliveries).run_requests] == [
        "LOG-1"
    ]
