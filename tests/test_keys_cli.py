"""`kuhr-pipeline keys init`: mode 0600, never overwrites."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from kuhr_pipeline.identity.keys import read_master_key, read_signing_key
from tests.helpers import run_cli


def test_keys_init_writes_private_files_and_never_overwrites(tmp_path: Path, monkeypatch, capsys) -> None:
    master, signing = tmp_path / "k" / "pseudonym.key", tmp_path / "k" / "signing.pem"
    monkeypatch.setenv("KUHR_PSEUDONYM_KEY_FILE", str(master))
    monkeypatch.setenv("KUHR_SIGNING_KEY_FILE", str(signing))
    code, out, err = run_cli(["keys", "init", "--demo-recipient", "demo", "--recipient-dir", tmp_path / "r"], capsys)
    assert code == 0, err
    for secret in (master, signing, tmp_path / "r" / "demo.sec"):
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600, secret
    assert len(read_master_key(master)) == 32
    read_signing_key(signing)
    before = master.read_bytes()
    code, out, err = run_cli(["keys", "init"], capsys)
    assert code == 1 and "never overwritten" in err
    assert master.read_bytes() == before
    assert before.decode().strip() not in out + err


@pytest.mark.parametrize("variable", ["KUHR_PSEUDONYM_KEY_FILE", "KUHR_SIGNING_KEY_FILE"])
def test_keys_init_needs_the_variables(variable: str, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("KUHR_PSEUDONYM_KEY_FILE", str(tmp_path / "a"))
    monkeypatch.setenv("KUHR_SIGNING_KEY_FILE", str(tmp_path / "b"))
    monkeypatch.delenv(variable)
    code, _, err = run_cli(["keys", "init"], capsys)
    assert code == 3 and variable in err
