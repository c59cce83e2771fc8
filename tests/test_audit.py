"""The hash-chained audit log detects an edited, removed or reordered line and a delivery without its line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kuhr_pipeline.delivery.audit import append_audit, verify_audit
from tests.helpers import run_cli


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "deliveries" / "audit.jsonl"
    for n in range(4):
        append_audit(path, {"application_id": "A-1", "delivery_id": f"d{n}", "manifest_sha256": f"{n:064x}"})
        folder = tmp_path / "deliveries" / "A-1" / f"d{n}"
        folder.mkdir(parents=True)
        (folder / "manifest.json").write_text("{}")
    return path


def test_intact_log(log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert verify_audit(log, log.parent) == []
    code, out, _ = run_cli(["audit", "verify", "--log", log], capsys)
    assert code == 0 and "intact" in out


def _lines(log: Path) -> list[str]:
    return log.read_text().splitlines()


def _write(log: Path, lines: list[str]) -> None:
    log.write_text("\n".join(lines) + "\n")


def test_edited_line(log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = _lines(log)
    record = json.loads(lines[1])
    record["manifest_sha256"] = "f" * 64
    lines[1] = json.dumps(record, sort_keys=True)
    _write(log, lines)
    code, _, err = run_cli(["audit", "verify", "--log", log], capsys)
    assert code == 1 and "line 3" in err


def test_removed_line(log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = _lines(log)
    del lines[1]
    _write(log, lines)
    code, _, err = run_cli(["audit", "verify", "--log", log], capsys)
    assert code == 1 and "does not chain" in err


def test_reordered_lines(log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = _lines(log)
    lines[1], lines[2] = lines[2], lines[1]
    _write(log, lines)
    code, _, err = run_cli(["audit", "verify", "--log", log], capsys)
    assert code == 1 and "does not chain" in err


def test_delivery_without_its_line(log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = log.parent / "A-1" / "d9"
    folder.mkdir()
    (folder / "manifest.json").write_text("{}")
    code, _, err = run_cli(["audit", "verify", "--log", log], capsys)
    assert code == 1 and "d9" in err and "has no line" in err
