"""Hostile spec files: refused in bounded time and memory, never with a traceback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import run_cli, write_spec

YAML_PIECES = st.sampled_from(
    [
        "application_id:",
        " HDS-1",
        "\n",
        "  ",
        "- ",
        "[",
        "]",
        "{",
        "}",
        ":",
        "&a ",
        "*a",
        "!!python/object:os.system",
        "!!binary",
        "'",
        '"',
        "period:",
        " from: 2019-01-01",
        "to:",
        "é",
        "\u202e",
        "\x00",
        "ÅÆØ",
        "0x1F",
        "~",
        "|",
        ">",
        "#",
        "---",
        "...",
        "%YAML 1.1",
        "<<: *a",
        "1e309",
        "-.inf",
        "2026-13-45",
        "null",
        "yes",
        "no",
    ]
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.one_of(st.lists(YAML_PIECES, max_size=40).map("".join), st.text(max_size=400)))
def test_fuzzed_spec_never_tracebacks(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    code, out, err = run_cli(["check", path], capsys)
    assert code == 2, (text, out, err)
    assert "Traceback" not in err and "internal error" not in err
    assert str(path) in err


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.one_of(st.text(max_size=80), st.integers(), st.none(), st.lists(st.text(max_size=5), max_size=3)))
def test_fuzzed_application_id_is_refused_or_safe(spec_dir: Path, capsys: pytest.CaptureFixture[str], value) -> None:
    path = write_spec(spec_dir, {"application_id": value})
    code, out, err = run_cli(["check", path], capsys)
    assert "Traceback" not in err and "internal error" not in err
    if code == 0:
        assert isinstance(value, str) and value.isascii() and "/" not in value and value[:2] != ".."
    else:
        assert code == 2 and "application_id" in err


def test_symlinked_key_pointing_outside_the_spec_folder(spec_dir: Path, tmp_path: Path, capsys) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "key.pub").write_text((spec_dir / "recipient.pub").read_text())
    os.symlink(outside / "key.pub", spec_dir / "linked.pub")
    path = write_spec(spec_dir, {"delivery.recipients": [{"name": "X", "public_key": "linked.pub"}]})
    code, _, err = run_cli(["check", path], capsys)
    assert code == 2 and "outside the spec's folder" in err


def test_spec_that_is_a_folder_or_binary(tmp_path: Path, capsys) -> None:
    (tmp_path / "dir.yaml").mkdir()
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00\x01" * 100)
    for name in ("dir.yaml", "bin.yaml", "missing.yaml"):
        code, _, err = run_cli(["check", tmp_path / name], capsys)
        assert code == 2 and "Traceback" not in err, err


def test_many_keys_and_long_lists_are_bounded(spec_dir: Path, capsys) -> None:
    path = spec_dir / "wide.yaml"
    path.write_text("variables: [" + ", ".join(f"v{i}" for i in range(20_000)) + "]\n")
    code, _, err = run_cli(["check", path], capsys)
    assert code == 2 and "Traceback" not in err


def test_a_source_that_changes_between_its_check_and_a_scan_stops_the_run(tmp_path, keys_env, capsys, monkeypatch):
    """A year file copied in after the source was checked (its claim ids, its years): the scan
    step finds the source is not the one checked and stops the run, exit 3, nothing prepared."""
    import shutil

    from kuhr_pipeline.defs import cohort_steps
    from tests.helpers import small_application

    source, spec = small_application(tmp_path, "TOCTOU-1", seed=61)
    checked = cohort_steps.require_distinct_claim_ids

    def check_then_copy_in(*args, **kwargs):
        checked(*args, **kwargs)
        year = source / "ar=2020"
        shutil.copy(sorted(year.glob("*.parquet"))[0], year / "copied-in-later.parquet")

    monkeypatch.setattr(cohort_steps, "require_distinct_claim_ids", check_then_copy_in)
    code, out, err = run_cli(["deliver", spec, "--source", source], capsys)
    assert code == 3 and out == "", err
    assert "changed while the run read it" in err and "nothing was delivered" in err and "Traceback" not in err
    assert not (keys_env["deliveries"] / "TOCTOU-1").exists()
    monkeypatch.setattr(cohort_steps, "require_distinct_claim_ids", checked)
    code, _, err = run_cli(["deliver", spec, "--source", source], capsys)
    assert code == 3 and "used by more than one claim" in err  # checked again: the copy repeats ids
