"""Four eyes and one gate: a run prepares a package in `.pending`; only a registered reviewer who
is not its preparer releases it (or rejects it); an unchanged spec is prepared again only on
purpose, whoever launches the run; the run uses the deployment's folders and keys only."""

from __future__ import annotations

import json
import stat
from datetime import timedelta
from pathlib import Path

import dagster as dg
import pytest

from kuhr_pipeline import clock
from kuhr_pipeline.defs import build_definitions
from kuhr_pipeline.defs.launch import failure_messages
from kuhr_pipeline.defs.resources import default_resources
from kuhr_pipeline.delivery.manifest import RELEASES
from tests.helpers import released, run_cli, small_application, write_spec

APP = "REL-1"


@pytest.fixture
def setup(tmp_path: Path, keys_env: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    source, spec = small_application(tmp_path, APP, seed=21)
    monkeypatch.setenv("KUHR_APPLICATIONS", str(spec.parent))
    monkeypatch.setenv("KUHR_SOURCE", str(source))
    return {**keys_env, "source": source, "spec": spec}


def prepare(setup: dict[str, Path], capsys, *extra: str) -> dict[str, str]:
    code, out, err = run_cli(["deliver", setup["spec"], "--json", *extra], capsys)
    assert code == 0, err
    return json.loads(out)


def release(target: Path | str, key: Path, capsys, *extra: str) -> tuple[int, str, str]:
    return run_cli(["release", target, "--key", key, *extra], capsys)


def audit_events(setup: dict[str, Path]) -> list[str]:
    log = setup["deliveries"] / "audit.jsonl"
    return [json.loads(line)["event"] for line in log.read_text().splitlines()]


def nothing_moved(setup: dict[str, Path], pending: Path) -> None:
    assert (pending / "manifest.json").is_file() and not (pending / RELEASES).exists()
    assert not (setup["deliveries"] / APP / pending.name).exists()
    assert audit_events(setup) == ["prepared"]


def test_a_run_prepares_a_package_recipients_cannot_see(setup, capsys) -> None:
    prepared = prepare(setup, capsys)
    pending = Path(prepared["path"])
    assert prepared["state"] == "prepared"
    assert pending == setup["deliveries"] / APP / ".pending" / prepared["delivery_id"]
    assert stat.S_IMODE(pending.stat().st_mode) == 0o700
    assert stat.S_IMODE(pending.parent.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == (0o700 if p.is_dir() else 0o600) for p in pending.rglob("*"))
    assert [p.name for p in (setup["deliveries"] / APP).iterdir() if not p.name.startswith(".")] == ["specs"]
    code, out, err = run_cli(["verify", pending, "--signer-pub", setup["signing_pub"]], capsys)
    assert code == 1 and "never released by a reviewer" in err
    code, out, err = run_cli(["verify", pending, "--prepared", "--signer-pub", setup["signing_pub"]], capsys)
    assert code == 0, err
    (line,) = [json.loads(x) for x in (setup["deliveries"] / "audit.jsonl").read_text().splitlines()]
    assert line["event"] == "prepared" and line["ran_by"] == "preparer" and line["trigger"] == "cli"
    archived = setup["deliveries"] / APP / "specs" / f"{line['spec_sha256']}.yaml"
    assert archived.is_file() and APP in archived.read_text()


def test_a_reviewer_releases_and_verify_checks_the_signature(setup, capsys) -> None:
    pending = Path(prepare(setup, capsys)["path"])
    code, out, err = release(pending.name, setup["anna"], capsys, "--note", "codebook read")
    assert code == 0, err
    target = setup["deliveries"] / APP / pending.name
    assert out.strip() == f"released: {target}" and not pending.exists()
    assert audit_events(setup) == ["prepared", "released"]
    code, out, err = run_cli(["verify", target, "--signer-pub", setup["signing_pub"]], capsys)
    assert code == 0 and "intact and released" in out, err
    assert run_cli(["audit", "verify"], capsys)[0] == 0

    releases = target / RELEASES
    body = json.loads(releases.read_text())
    assert [r["reviewer"] for r in body["releases"]] == ["anna"] and body["releases"][0]["note"] == "codebook read"
    body["releases"][0]["note"] = "altered"
    releases.write_text(json.dumps(body))
    code, _, err = run_cli(["verify", target, "--signer-pub", setup["signing_pub"]], capsys)
    assert code == 1 and "its signature by anna does not match" in err
    releases.unlink()
    code, _, err = run_cli(["verify", target, "--signer-pub", setup["signing_pub"]], capsys)
    assert code == 1 and "never released by a reviewer" in err


def test_the_preparer_may_not_release(setup, capsys, monkeypatch) -> None:
    monkeypatch.setenv("KUHR_RAN_BY", "anna")
    pending = Path(prepare(setup, capsys)["path"])
    code, out, err = release(pending, setup["anna"], capsys)
    assert code == 2 and out == ""
    assert err.strip() == (
        f"error: {pending}: --key: anna prepared this package and may not release it (fix: ask a second reviewer)"
    )
    nothing_moved(setup, pending)


def test_an_unregistered_key_may_not_release_or_reject(setup, capsys) -> None:
    pending = Path(prepare(setup, capsys)["path"])
    for command in (["release", pending], ["reject", pending, "--reason", "no"]):
        code, _, err = run_cli([*command, "--key", setup["signing"]], capsys)
        assert code == 2 and "is not a registered reviewer's key" in err and "Traceback" not in err
    nothing_moved(setup, pending)


def test_two_reviews_need_two_people_with_two_keys(setup, capsys, monkeypatch) -> None:
    monkeypatch.setenv("KUHR_REQUIRED_REVIEWS", "2")
    pending = Path(prepare(setup, capsys)["path"])
    code, out, err = release(pending, setup["anna"], capsys)
    assert code == 0 and "1 of 2 reviews" in out, err
    assert pending.is_dir() and (pending / RELEASES).is_file()
    code, _, err = release(pending, setup["anna"], capsys)
    assert code == 2 and "anna has already released this package" in err
    code, _, err = run_cli(["verify", pending, "--signer-pub", setup["signing_pub"]], capsys)
    assert code == 1 and "1 valid release(s); 2 are required" in err
    code, out, err = release(pending, setup["bjorn"], capsys)
    assert code == 0 and out.startswith("released: "), err
    target = Path(out.strip().removeprefix("released: "))
    assert run_cli(["verify", target, "--signer-pub", setup["signing_pub"]], capsys)[0] == 0
    history = json.loads(run_cli(["history", APP, "--json"], capsys)[1])
    assert [r["name"] for r in history["reviewers"]] == ["anna", "bjorn"] and history["state"] == "released"


def test_a_package_changed_after_preparation_is_not_released(setup, capsys) -> None:
    pending = Path(prepare(setup, capsys)["path"])
    data = sorted((pending / "data").iterdir())[0]
    data.write_bytes(data.read_bytes() + b"\0")
    code, _, err = release(pending, setup["anna"], capsys)
    assert code == 2 and "differs from what was prepared" in err
    assert audit_events(setup) == ["prepared"]
    assert not (setup["deliveries"] / APP / pending.name).exists()


def test_a_spec_edited_since_preparation_is_not_released(setup, capsys) -> None:
    pending = Path(prepare(setup, capsys)["path"])
    write_spec(setup["spec"].parent, {"application_id": APP, "cohort.entry.diagnoses": ["R74"]}, name=f"{APP}.yaml")
    code, _, err = release(pending, setup["anna"], capsys)
    assert code == 2 and "changed since the package was prepared" in err
    nothing_moved(setup, pending)


def test_nothing_is_released_after_the_approval_ended(setup, capsys, set_today) -> None:
    pending = Path(prepare(setup, capsys)["path"])
    set_today(clock.today() + timedelta(days=5 * 365))
    code, _, err = release(pending, setup["anna"], capsys)
    assert code == 2 and "may not be delivered today" in err and "valid_until" in err
    nothing_moved(setup, pending)


def test_a_released_package_is_not_pending(setup, capsys) -> None:
    pending = Path(prepare(setup, capsys)["path"])
    released(pending, setup["anna"], capsys)
    code, _, err = release(pending.name, setup["bjorn"], capsys)
    assert code == 2 and "is not pending" in err


def test_a_rejection_removes_the_package_and_frees_the_spec(setup, capsys) -> None:
    pending = Path(prepare(setup, capsys)["path"])
    code, out, err = run_cli(["reject", pending, "--key", setup["anna"], "--reason", "wrong period"], capsys)
    assert code == 0, err
    assert not pending.exists() and audit_events(setup) == ["prepared", "rejected"]
    (entry,) = [json.loads(x) for x in run_cli(["history", "--state", "rejected", "--json"], capsys)[1].splitlines()]
    assert entry["reason"] == "wrong period" and entry["reviewers"][0]["name"] == "anna"
    assert run_cli(["audit", "verify"], capsys)[0] == 0
    prepare(setup, capsys)  # a rejected package does not count for the gate: no --again needed


def test_the_gate_refuses_an_unchanged_spec_unless_asked_again(setup, capsys) -> None:
    first = prepare(setup, capsys)
    code, out, err = run_cli(["deliver", setup["spec"]], capsys)
    assert code == 2 and out == ""
    assert f"is unchanged since delivery {first['delivery_id']}" in err and "(prepared)" in err
    released(first["path"], setup["anna"], capsys)
    code, _, err = run_cli(["deliver", setup["spec"]], capsys)
    assert code == 2 and "(released)" in err
    again = prepare(setup, capsys, "--again")
    assert again["state"] == "prepared" and again["delivery_id"] != first["delivery_id"]


def _job(setup: dict[str, Path]) -> dg.JobDefinition:
    return build_definitions(default_resources()).resolve_job_def("deliver_application")


def test_every_launcher_passes_the_gate_in_the_application_step(setup, capsys) -> None:
    """A Materialize, a backfill, `dg launch`, the GraphQL API: all run the job without `deliver`;
    its application step refuses an unchanged spec already prepared, and kuhr/again=true is the
    purpose made explicit."""
    prepare(setup, capsys)
    with dg.DagsterInstance.get() as instance:
        result = _job(setup).execute_in_process(partition_key=APP, instance=instance, raise_on_error=False)
        assert not result.success
        (message,) = failure_messages(result)
        assert message.startswith("step application failed: ") and "is unchanged since delivery" in message
        assert "kuhr/again=true" in message
        again = _job(setup).execute_in_process(
            partition_key=APP, instance=instance, tags={"kuhr/again": "true"}, raise_on_error=False
        )
        assert again.success, failure_messages(again)
    entries = [json.loads(x) for x in run_cli(["history", APP, "--json"], capsys)[1].splitlines()]
    assert [e["state"] for e in entries] == ["prepared", "prepared"]  # never published by a run
    assert [e["trigger"] for e in entries] == ["cli", "ui"]
    assert entries[1]["run_id"] == again.run_id and entries[1]["ran_by"] == "preparer"
    assert [r["name"] for r in entries[1]["recipients"]] == ["Recipient"]


def test_run_config_that_names_other_folders_is_refused_before_anything_is_read(setup, tmp_path, capsys) -> None:
    shadow = tmp_path / "shadow"
    with dg.DagsterInstance.get() as instance:
        instance.add_dynamic_partitions("applications", [APP])
        result = _job(setup).execute_in_process(
            partition_key=APP,
            instance=instance,
            run_config={"resources": {"paths": {"config": {"deliveries": str(shadow)}}}},
            raise_on_error=False,
        )
    assert not result.success
    (message,) = failure_messages(result)
    assert "run config resources.paths: names folders or keys at launch" in message
    assert not shadow.exists() and not setup["deliveries"].exists()
    assert not (setup["home"] / "staging" / APP).exists() or not any((setup["home"] / "staging" / APP).iterdir())


def test_a_step_of_another_deployment_refuses(setup, capsys) -> None:
    """A run tagged by one deployment (its folders and master key) and run by a process of
    another: the first step refuses before it reads anything (on Celery, every step does)."""
    with dg.DagsterInstance.get() as instance:
        instance.add_dynamic_partitions("applications", [APP])
        result = _job(setup).execute_in_process(
            partition_key=APP, instance=instance, tags={"kuhr/deployment": "0" * 32}, raise_on_error=False
        )
    (message,) = failure_messages(result)
    assert "was launched by another deployment" in message
    assert not setup["deliveries"].exists()


@pytest.mark.parametrize("name", ["anna\n2026-01-01  FAKE-1  released", "x" * 65, "a\tb", ""])
def test_ran_by_is_a_name_or_the_run_is_refused(setup, capsys, monkeypatch, name: str) -> None:
    monkeypatch.setenv("KUHR_RAN_BY", name)
    code, out, err = run_cli(["deliver", setup["spec"]], capsys)
    assert code == 2 and out == "" and "KUHR_RAN_BY: is not a name" in err
    assert not setup["deliveries"].exists() or not (setup["deliveries"] / "audit.jsonl").exists()


def test_history_filters_and_an_unknown_application(setup, capsys) -> None:
    first = prepare(setup, capsys)
    released(first["path"], setup["anna"], capsys)
    prepare(setup, capsys, "--again")
    rows = run_cli(["history", APP, "--json"], capsys)[1].splitlines()
    assert [json.loads(r)["state"] for r in rows] == ["released", "prepared"]
    assert len(run_cli(["history", "--state", "released", "--json"], capsys)[1].splitlines()) == 1
    assert len(run_cli(["history", "--recipient", "Recipient", "--json"], capsys)[1].splitlines()) == 2
    assert run_cli(["history", "--recipient", "nobody", "--json"], capsys)[1] == ""
    assert run_cli(["history", "--since", "2999-01-01", "--json"], capsys)[1] == ""
    code, out, err = run_cli(["history", "NO-SUCH-1"], capsys)
    assert code == 1 and "has no line" in err
    text = run_cli(["history", APP], capsys)[1]
    assert "released" in text and "reviewed by anna" in text and "by preparer (cli)" in text and "to Recipient" in text


def test_a_reviewer_cannot_lower_the_reviews_the_deployment_required(setup, capsys, monkeypatch) -> None:
    monkeypatch.setenv("KUHR_REQUIRED_REVIEWS", "2")
    pending = Path(prepare(setup, capsys)["path"])
    monkeypatch.setenv("KUHR_REQUIRED_REVIEWS", "1")  # the reviewer's own shell
    code, out, err = release(pending, setup["anna"], capsys)
    assert code == 0 and "1 of 2 reviews" in out, err
    assert pending.is_dir()


def test_two_reviewers_at_once_never_both_count_on_a_stale_log(setup, capsys, monkeypatch) -> None:
    """Another line joins the log between a release's checks and its line (a second reviewer at
    the same moment): the release is refused and writes nothing; run again, it goes through."""
    from kuhr_pipeline.delivery import release as releasing
    from kuhr_pipeline.delivery.audit import record_estimate
    from kuhr_pipeline.identity.keys import read_signing_key

    pending = Path(prepare(setup, capsys)["path"])
    checked = releasing._require_spec_still_approved

    def meanwhile(*args, **kwargs):
        checked(*args, **kwargs)
        record_estimate(setup["deliveries"], read_signing_key(setup["signing"]), APP, "0" * 64, "now")

    monkeypatch.setattr(releasing, "_require_spec_still_approved", meanwhile)
    code, _, err = release(pending, setup["anna"], capsys)
    assert code == 2 and "the audit log changed while this was checked" in err
    assert audit_events(setup) == ["prepared", "estimate"] and pending.is_dir()
    monkeypatch.setattr(releasing, "_require_spec_still_approved", checked)
    assert release(pending, setup["anna"], capsys)[0] == 0


def test_relative_paths_are_made_absolute_before_the_run(setup, capsys, monkeypatch, tmp_path) -> None:
    """`--out relout` from another working directory: the printed folder is absolute, the package
    is there, and the gate looks at the same folder."""
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(["deliver", setup["spec"], "--out", "relout", "-q"], capsys)
    assert code == 0, err
    printed = Path(out.strip())
    assert printed.is_absolute() and printed.is_relative_to(tmp_path / "relout") and printed.is_dir()
    code, _, err = run_cli(["deliver", setup["spec"], "--out", "relout"], capsys)
    assert code == 2 and f"into {tmp_path / 'relout'}" in err


def test_a_warning_checks_own_error_does_not_hide_a_prepared_package(setup, capsys, monkeypatch) -> None:
    """The source-quality check (a warning, never blocking) breaks on its own: the package is
    still prepared, and `deliver` says so (exit 0, the failure as a warning), so nobody prepares
    it again thinking nothing was made."""
    from kuhr_pipeline.defs import checks

    def broken(*args, **kwargs):
        raise ValueError("the quality sample could not be read")

    monkeypatch.setattr(checks, "load_source_quality", lambda *a, **k: None)
    monkeypatch.setattr(checks, "check_source_quality", broken)
    code, out, err = run_cli(["deliver", setup["spec"], "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["state"] == "prepared" and Path(json.loads(out)["path"]).is_dir()
    assert (
        "warning: run " in err and "the quality sample could not be read" in err and "(the package was prepared)" in err
    )


def test_every_reporting_command_answers_in_json_with_ok_and_its_exit_code(setup, capsys) -> None:
    """For scripts: one object with `ok` and `exit_code`, on success and on failure (#50)."""
    prepared = prepare(setup, capsys)
    assert (prepared["ok"], prepared["exit_code"]) == (True, 0)
    pending = Path(prepared["path"])
    code, out, _ = run_cli(["verify", pending, "--prepared", "--json"], capsys)
    assert code == 0 and json.loads(out) | {"delivery": ""} == {
        "ok": True, "exit_code": 0, "delivery": "", "intact": True, "state": "prepared", "problems": []
    }  # fmt: skip
    code, out, err = release(pending, setup["anna"], capsys, "--json")
    answer = json.loads(out)
    assert code == 0 and answer["state"] == "released" and (answer["reviews"], answer["required"]) == (1, 1)
    code, out, err = release(pending, setup["bjorn"], capsys, "--json")  # not pending any more: refused
    refused = json.loads(out)
    assert code == 2 and refused["ok"] is False and refused["exit_code"] == 2 and refused["problems"], out
    assert err.startswith("error: ")  # the person's line stays on stderr
    code, out, _ = run_cli(["verify", answer["path"], "--json"], capsys)
    assert code == 0 and json.loads(out)["intact"] is True
    code, out, _ = run_cli(["deliver", setup["spec"], "--json"], capsys)  # unchanged: the one gate refuses
    assert code == 2 and json.loads(out)["ok"] is False and "--again" in out
    (Path(answer["path"]) / "manifest.json").write_text("{}")
    code, out, _ = run_cli(["verify", answer["path"], "--json"], capsys)
    assert code == 1 and json.loads(out)["ok"] is False and json.loads(out)["problems"]
    code, out, _ = run_cli(["audit", "verify", "--json"], capsys)
    assert json.loads(out)["exit_code"] == code
    code, out, _ = run_cli(["check", setup["spec"], setup["spec"].parent / "missing.yaml", "--json"], capsys)
    answer = json.loads(out)
    assert code == 2 and answer["ok"] is False and [s["ok"] for s in answer["specs"]] == [True, False]


def test_a_specs_advisories_are_said_on_its_first_run_not_on_every_run(setup, capsys) -> None:
    """The spec's diagnoses are a plain list (an advisory): said when the version is first prepared."""
    code, _, first = run_cli(["deliver", setup["spec"]], capsys)
    assert code == 0 and "warning: cohort.entry.diagnoses is a plain list" in first, first
    code, _, again = run_cli(["deliver", setup["spec"], "--again"], capsys)
    assert code == 0 and "plain list" not in again, again
    code, out, _ = run_cli(["check", setup["spec"]], capsys)
    assert "advisory: cohort.entry.diagnoses is a plain list" in out  # check always says it
