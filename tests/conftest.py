from __future__ import annotations

import os
from pathlib import Path

import pytest
from crypt4gh.keys import c4gh

os.environ.setdefault("DAGSTER_DG_UPDATE_CHECK_ENABLED", "0")

REPO = Path(__file__).resolve().parents[1]


def make_recipient(folder: Path, name: str) -> tuple[Path, Path]:
    sec, pub = folder / f"{name}.sec", folder / f"{name}.pub"
    c4gh.generate(str(sec), str(pub), passphrase=None, comment=name.encode())
    return sec, pub


@pytest.fixture
def spec_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "applications"
    folder.mkdir()
    make_recipient(folder, "recipient")
    return folder


@pytest.fixture
def keys_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A master key, a signing key and a DAGSTER_HOME in tmp, set in the environment."""
    from kuhr_pipeline.keys_init import init_keys

    keys = tmp_path / "keys"
    master, signing = keys / "pseudonym.key", keys / "signing.pem"
    init_keys(master, signing, None, keys)
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("KUHR_PSEUDONYM_KEY_FILE", str(master))
    monkeypatch.setenv("KUHR_SIGNING_KEY_FILE", str(signing))
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("KUHR_DELIVERIES", str(tmp_path / "deliveries"))
    return {
        "master": master,
        "signing": signing,
        "signing_pub": keys / "signing.pub",
        "home": home,
        "deliveries": tmp_path / "deliveries",
    }
