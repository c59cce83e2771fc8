"""Partition keys come from outside (the UI's API, sensors, the command line): checked before any
file is read, and the spec is found by the application_id it declares, not by the key as a path."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from kuhr_pipeline.defs import build_definitions
from kuhr_pipeline.defs.launch import failure_messages
from kuhr_pipeline.defs.resources import KuhrPaths, default_resources
from kuhr_pipeline.defs.sensors import new_applications
from tests.helpers import small_application, write_spec


def _job(apps: Path, source: Path, deliveries: Path) -> dg.JobDefinition:
    paths = KuhrPaths(applications=str(apps), source=str(source), deliveries=str(deliveries))
    defs = build_definitions({**default_resources(), "paths": paths})
    return defs.resolve_job_def("deliver_application")


def test_a_partition_that_is_no_application_id_fails_before_any_file(tmp_path, keys_env) -> None:
    """`../x`, added as the UI's API adds partitions: the run fails on the key itself; the file
    the key would have named as a path (`applications/../x.yaml`) is never opened."""
    apps = tmp_path / "applications"
    apps.mkdir()
    write_spec(tmp_path, {"application_id": "x"}, name="x.yaml")  # what the old path pasting found
    with dg.DagsterInstance.get() as instance:
        instance.add_dynamic_partitions("applications", ["../x"])
        result = _job(apps, tmp_path / "no-source", keys_env["deliveries"]).execute_in_process(
            partition_key="../x", instance=instance, raise_on_error=False
        )
    assert not result.success
    (message,) = failure_messages(result)
    assert message.startswith("step application failed: partition key: application_id: '../x' is not an application id")
    assert not (keys_env["home"] / "staging").exists()
    assert not keys_env["deliveries"].exists()


def test_the_spec_is_found_by_the_application_id_it_declares(tmp_path, keys_env) -> None:
    source, spec = small_application(tmp_path, "HOLD-1")
    spec.rename(spec.with_name("study-a.yaml"))
    with dg.DagsterInstance.get() as instance:
        instance.add_dynamic_partitions("applications", ["HOLD-1"])
        result = _job(spec.parent, source, keys_env["deliveries"]).execute_in_process(
            partition_key="HOLD-1", instance=instance, raise_on_error=False
        )
    assert result.success, failure_messages(result)
    assert len(list((keys_env["deliveries"] / "HOLD-1" / ".pending").glob("2*/manifest.json"))) == 1


def test_two_spec_files_declaring_one_id_are_refused_naming_both(tmp_path, keys_env) -> None:
    source, spec = small_application(tmp_path, "HOLD-2")
    twin = spec.with_name("copy.yaml")
    twin.write_text(spec.read_text())
    with dg.DagsterInstance.get() as instance:
        instance.add_dynamic_partitions("applications", ["HOLD-2"])
        result = _job(spec.parent, source, keys_env["deliveries"]).execute_in_process(
            partition_key="HOLD-2", instance=instance, raise_on_error=False
        )
    (message,) = failure_messages(result)
    assert (
        f"{spec.parent / 'HOLD-2.yaml'}, {twin}: application_id: 2 spec files declare application_id HOLD-2" in message
    )
    assert not (keys_env["deliveries"] / "HOLD-2").exists()


def test_the_sensor_removes_invalid_partitions_and_keeps_orphaned_ones_with_their_history(tmp_path, capsys) -> None:
    apps = tmp_path / "applications"
    apps.mkdir()
    write_spec(apps, {"application_id": "KEEP-1"}, name="keep.yaml")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("applications", ["../evil id", "GONE-1", "KEEP-1"])
        context = dg.build_sensor_context(instance=instance, resources={"paths": KuhrPaths(applications=str(apps))})
        result = new_applications(context)
    deletes = [r for r in result.dynamic_partitions_requests if isinstance(r, dg.DeleteDynamicPartitionsRequest)]
    assert [sorted(r.partition_keys) for r in deletes] == [["../evil id"]]  # GONE-1's spec moved away: kept
    log = capsys.readouterr().err
    assert "partition '../evil id' is not an application id: removed" in log
    assert "partition GONE-1 has no spec file in KUHR_APPLICATIONS: kept with its history" in log


def test_a_run_refuses_while_another_run_of_its_application_is_in_progress(tmp_path, keys_env, capsys) -> None:
    """A run launched from the UI passes neither `deliver`'s lock nor the queue's tag limit when a
    CLI run of the same application is going: the application step sees the other run and stops."""
    from kuhr_pipeline.defs.stale_runs import PROCESS_TAG
    from kuhr_pipeline.processes import this_process
    from tests.helpers import run_cli

    source, spec = small_application(tmp_path, "HOLD-3")
    with dg.DagsterInstance.get() as instance:
        other = instance.add_run(
            dg.DagsterRun(
                job_name="deliver_application",
                status=dg.DagsterRunStatus.STARTED,
                tags={"dagster/partition": "HOLD-3", PROCESS_TAG: this_process()},  # alive: this process
            )
        )
    code, out, err = run_cli(["deliver", spec, "--source", source], capsys)
    assert code == 1, err
    assert f"HOLD-3: run: run {other.run_id[:8]} of this application is in progress" in err.strip().splitlines()[-1]
    assert not (keys_env["deliveries"] / "HOLD-3").exists()
    with dg.DagsterInstance.get() as instance:
        instance.report_run_failed(instance.get_run_by_id(other.run_id))
    code, out, err = run_cli(["deliver", spec, "--source", source], capsys)
    assert code == 0, err


def test_each_run_keeps_its_outputs_apart(tmp_path, keys_env) -> None:
    """Step outputs live under their run (storage/runs/<run_id>/…): two runs of one application
    never load each other's, and an input no run of this job made is refused, not guessed."""
    source, spec = small_application(tmp_path, "HOLD-4")
    job = _job(spec.parent, source, keys_env["deliveries"])
    with dg.DagsterInstance.get() as instance:
        instance.add_dynamic_partitions("applications", ["HOLD-4"])
        first = job.execute_in_process(partition_key="HOLD-4", instance=instance, raise_on_error=False)
        second = job.execute_in_process(
            partition_key="HOLD-4", instance=instance, raise_on_error=False, tags={"kuhr/again": "true"}
        )
        assert first.success and second.success
        runs = keys_env["home"] / "storage" / "runs"
        assert sorted(p.name for p in runs.iterdir()) == sorted([first.run_id, second.run_id])
        for run_id in (first.run_id, second.run_id):
            assert (runs / run_id / "cohort" / "HOLD-4.pickle").exists()
        alone = job.execute_in_process(
            partition_key="HOLD-4", instance=instance, raise_on_error=False, asset_selection=[dg.AssetKey("delivery")]
        )
    assert not alone.success
    assert any("was not made by this run" in m for m in failure_messages(alone)), failure_messages(alone)


def test_a_run_launched_with_another_spec_hash_stops_with_one_sentence(tmp_path, keys_env) -> None:
    """The sensor tagged the run with the spec it saw; the file changed before the run read it."""
    source, spec = small_application(tmp_path, "HOLD-4")
    with dg.DagsterInstance.get() as instance:
        instance.add_dynamic_partitions("applications", ["HOLD-4"])
        result = _job(spec.parent, source, keys_env["deliveries"]).execute_in_process(
            partition_key="HOLD-4", instance=instance, raise_on_error=False, tags={"kuhr/spec_sha256": "0" * 16}
        )
    (message,) = failure_messages(result)
    assert message.startswith(f"step application failed: {spec}: (spec): sha256 ")
    assert "is not the spec this run was launched with (0000000000000000)" in message
    (failure,) = result.get_step_failure_events()
    error = failure.step_failure_data.error
    assert error is not None and error.cls_name == "Failure" and error.stack == []  # the sentence alone
    assert error.message == message.removeprefix("step application failed: ")
    (run_failure,) = [e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE]
    assert run_failure.job_failure_data.error == error
    assert not (keys_env["deliveries"] / "HOLD-4").exists()
