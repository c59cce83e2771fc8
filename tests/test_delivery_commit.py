"""The audit line commits a delivery: a kill between the line and the folder, a lost log, and two
runs of one application at once, each with real `kuhr-pipeline deliver` processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kuhr_pipeline.application import load_spec
from tests.helpers import released, run_cli, small_application, write_spec

CLI = Path(sys.executable).with_name("kuhr-pipeline")
APP = "COMMIT-1"


@pytest.fixture
def setup(tmp_path: Path, keys_env: dict[str, Path]) -> dict[str, Path]:
    source, spec = small_application(tmp_path, APP, seed=12)
    return {**keys_env, "source": source, "spec": spec}


def deliver_process(setup: dict[str, Path], spec: Path | None = None, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [str(CLI), "deliver", "--again", str(spec or setup["spec"]), "--source", str(setup["source"])],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def audit_verify(setup: dict[str, Path], capsys) -> tuple[int, str]:
    code, out, err = run_cli(["audit", "verify", "--signer-pub", setup["signing_pub"]], capsys)
    return code, out + err


def published(setup: dict[str, Path]) -> list[Path]:
    """The application's prepared packages (pending release)."""
    return sorted(p for p in (setup["deliveries"] / APP / ".pending").glob("2*") if p.is_dir())


def no_staging(setup: dict[str, Path]) -> bool:
    return not list((setup["deliveries"] / APP).glob(".staging-*"))


def test_a_kill_between_the_line_and_the_folder_is_completed_by_the_next_run(setup, capsys) -> None:
    killed = deliver_process(setup, KUHR_FAULT="after-audit-line")
    killed.communicate(timeout=300)
    assert killed.returncode == -9
    assert published(setup) == []  # the folder never appeared: its line did
    lines = (setup["deliveries"] / "audit.jsonl").read_text().splitlines()
    assert len(lines) == 1
    code, text = audit_verify(setup, capsys)
    assert code == 1 and "its delivery folder" in text and "is missing" in text

    code, out, err = run_cli(["deliver", setup["spec"], "--source", setup["source"]], capsys)
    first = json.loads(lines[0])["delivery_id"]
    assert f"completed {setup['deliveries'] / APP / '.pending' / first}" in err
    assert code == 2 and f"is unchanged since delivery {first}" in err  # completed, so not prepared twice
    assert [p.name for p in published(setup)] == [first]
    assert no_staging(setup)
    code, text = audit_verify(setup, capsys)
    assert code == 0, text
    pending = setup["deliveries"] / APP / ".pending" / first
    code, _, err = run_cli(["verify", pending, "--prepared", "--signer-pub", setup["signing_pub"]], capsys)
    assert code == 0, err


def test_a_lost_log_stops_every_delivery_until_a_new_chain_records_the_break(setup, capsys) -> None:
    code, out, err = run_cli(["deliver", setup["spec"], "--source", setup["source"]], capsys)
    assert code == 0, err
    released(out.strip(), setup["anna"], capsys, setup["spec"].parent)
    log = setup["deliveries"] / "audit.jsonl"
    log.unlink()
    code, out, err = run_cli(["deliver", setup["spec"], "--source", setup["source"]], capsys)
    assert code == 3 and out == ""
    assert f"error: {log}: (file): is missing while 1 delivery folders exist" in err
    assert "audit init --accept-existing" in err and "Traceback" not in err
    assert len(list((setup["deliveries"] / APP).glob("2*"))) == 1

    code, out, err = run_cli(["audit", "init"], capsys)
    assert code == 2 and "--accept-existing" in err
    code, out, err = run_cli(["audit", "init", "--accept-existing"], capsys)
    assert code == 0 and "1 existing deliveries accepted" in out, err
    code, out, err = run_cli(["deliver", setup["spec"], "--source", setup["source"]], capsys)
    assert code == 0, err
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r.get("event") for r in records] == ["chain_break", "prepared"]
    assert records[0]["accepted"] == [[APP, next((setup["deliveries"] / APP).glob("2*")).name]]
    assert audit_verify(setup, capsys)[0] == 0


def test_a_damaged_log_stops_a_delivery(setup, capsys) -> None:
    code, _, err = run_cli(["deliver", setup["spec"], "--source", setup["source"]], capsys)
    assert code == 0, err
    log = setup["deliveries"] / "audit.jsonl"
    log.write_text(log.read_text().replace('"ran_by": "', '"ran_by": "x'))
    code, out, err = run_cli(["deliver", setup["spec"], "--source", setup["source"]], capsys)
    assert code == 3 and "line 1: its signature does not match" in err
    assert len(published(setup)) == 1


def test_two_specs_of_one_application_at_once_never_mix(setup, capsys) -> None:
    """Two different specs with one application_id, delivered at the same moment, three times:
    each printed folder holds the spec of the run that printed it."""
    other = write_spec(
        setup["spec"].parent,
        {
            "application_id": APP,
            "cohort.entry.diagnoses": ["R74"],
            "variables": ["pasient_pseudonym", {"name": "behandlingstidspunkt", "as": "year"}],
        },
        name="other.yaml",
    )
    hashes = {}
    for path in (setup["spec"], other):
        code, out, err = run_cli(["check", path], capsys)
        assert code == 0, err
        hashes[path] = load_spec(path).sha256  # the canonical hash: each run's own spec
    for _ in range(3):
        runs = {path: deliver_process(setup, path) for path in (setup["spec"], other)}
        for path, process in runs.items():
            out, err = process.communicate(timeout=300)
            assert process.returncode == 0, err[-2000:]
            manifest = json.loads((Path(out.strip()) / "manifest.json").read_text())
            assert manifest["spec_sha256"] == hashes[path]
    assert len(published(setup)) == 6
    assert audit_verify(setup, capsys)[0] == 0


def test_a_run_stopped_from_elsewhere_while_it_packs_publishes_nothing(setup, capsys, monkeypatch) -> None:
    """A step on a worker of its own is not ended with `deliver`: the UI's Terminate (or a stopped
    `deliver --executor celery`) marks the run canceling, and the commit asks first."""
    import dagster as dg

    from kuhr_pipeline.delivery import publish

    encrypt = publish._encrypt_data

    def encrypt_then_terminate(*args, **kwargs):
        files = encrypt(*args, **kwargs)
        with dg.DagsterInstance.get() as instance:
            (run,) = instance.get_runs(limit=1)
            instance.report_run_canceling(run, message="terminated from the UI")
        return files

    monkeypatch.setattr(publish, "_encrypt_data", encrypt_then_terminate)
    code, _, err = run_cli(["deliver", setup["spec"], "--source", setup["source"]], capsys)
    assert code == 1, err
    assert "run: was stopped before its commit; nothing was published" in err
    assert published(setup) == []
    assert no_staging(setup)
    assert (
        not (setup["deliveries"] / "audit.jsonl").exists()
        or "prepared" not in (setup["deliveries"] / "audit.jsonl").read_text()
    )


def test_a_new_chain_is_refused_on_an_intact_log_and_never_adopts_a_copy(setup, capsys, tmp_path) -> None:
    """`audit init --accept-existing` on a log that verifies would reset history and the gate:
    exit 2. A folder copied in (another application's delivery) is never adopted: `deliver` and
    `audit verify` name it, and a new chain refuses to accept it."""
    import shutil

    code, out, err = run_cli(["deliver", setup["spec"], "--source", setup["source"]], capsys)
    assert code == 0, err
    first = released(out.strip(), setup["anna"], capsys, setup["spec"].parent)
    code, _, err = run_cli(["audit", "init", "--accept-existing"], capsys)
    assert code == 2 and "verifies intact; a new chain would erase its history" in err
    copy = setup["deliveries"] / "OTHER-1" / first.name
    shutil.copytree(first, copy)
    code, text = audit_verify(setup, capsys)
    assert code == 1 and f"{copy}: (folder): delivery has no release line" in text
    code, _, err = run_cli(["deliver", setup["spec"], "--source", setup["source"], "--again"], capsys)
    assert code == 3 and f"{copy}: (folder): delivery has no release line" in err
    assert copy.is_dir()  # named, neither adopted nor removed: the operator decides
    code, _, err = run_cli(["audit", "init", "--accept-existing"], capsys)
    assert code == 2 and f"{copy}: (folder): is not a whole delivery of this application" in err
    assert [json.loads(x)["event"] for x in (setup["deliveries"] / "audit.jsonl").read_text().splitlines()] == [
        "prepared",
        "released",
    ]


def test_a_log_shortened_at_its_end_is_caught(setup, capsys) -> None:
    """Dropping the last lines verifies no more: with the folder left in place its manifest names
    the missing line; with the folder moved away too, the head kept in DAGSTER_HOME (and one the
    operator expects) says where the log ended."""
    import hashlib
    import shutil

    code, out, err = run_cli(["deliver", setup["spec"], "--source", setup["source"]], capsys)
    assert code == 0, err
    pending = Path(out.strip())
    manifest = json.loads((pending / "manifest.json").read_text())
    log = setup["deliveries"] / "audit.jsonl"
    lines = log.read_bytes().splitlines(keepends=True)
    assert manifest["audit"] == {"sequence": 1, "previous_sha256": "0" * 64}
    assert json.loads(lines[0])["sequence"] == 1
    first_line = lines[0].rstrip(b"\n")
    head = f"1:{hashlib.sha256(first_line).hexdigest()}"
    assert run_cli(["audit", "verify", "--expect-head", head], capsys)[0] == 0
    run_cli(["estimate", setup["spec"], "--source", setup["source"]], capsys)  # a second line

    log.write_bytes(lines[0])  # the estimate's line dropped
    code, text = audit_verify(setup, capsys)
    assert code == 1 and "line 2: is missing: the log ends at line 1" in text and "removed from its end" in text

    shutil.move(pending, setup["deliveries"].parent / "moved-away")  # and the package with its line
    log.write_bytes(b"")
    code, text = audit_verify(setup, capsys)
    assert code == 1 and "the log ends at line 0" in text
    code, _, err = run_cli(["audit", "verify", "--expect-head", head], capsys)
    assert code == 1 and "line 1: is missing" in err and "the expected head" in err
    code, _, err = run_cli(["deliver", setup["spec"], "--source", setup["source"]], capsys)
    assert code == 3 and "removed from its end" in err  # nothing is delivered on a shortened log
