from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from crypt4gh.keys import c4gh

PROJECT_INSTANCE = Path(__file__).resolve().parents[1] / "dagster_home" / "dagster.yaml"

os.environ.setdefault("DAGSTER_DG_UPDATE_CHECK_ENABLED", "0")

REPO = Path(__file__).resolve().parents[1]

if os.environ.get("KUHR_TEST_TODAY"):  # the suite on another day: tests/clock/sitecustomize.py
    from kuhr_pipeline import clock as _clock

    assert getattr(_clock.now, "shifted", False), "KUHR_TEST_TODAY needs PYTHONPATH=tests/clock"


@pytest.fixture(autouse=True)
def _environment_restored():
    """`deliver` run in the test process sets its deployment's folders in the environment (as the
    command does for its own process): each test starts from the environment it found."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def make_recipient(folder: Path, name: str) -> tuple[Path, Path]:
    sec, pub = folder / f"{name}.sec", folder / f"{name}.pub"
    c4gh.generate(str(sec), str(pub), passphrase=None, comment=name.encode())
    return sec, pub


@pytest.fixture
def set_today(monkeypatch: pytest.MonkeyPatch) -> Callable[[date], None]:
    """Sets the pipeline's clock (kuhr_pipeline.clock) to noon UTC of a given day."""
    from kuhr_pipeline import clock

    def at(day: date) -> None:
        monkeypatch.setattr(clock, "now", lambda: datetime(day.year, day.month, day.day, 12, tzinfo=UTC))

    return at


@pytest.fixture
def spec_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "applications"
    folder.mkdir()
    make_recipient(folder, "recipient")
    return folder


@pytest.fixture
def keys_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A master key, a signing key and a DAGSTER_HOME in tmp, set in the environment."""
    from kuhr_pipeline.delivery.reviewers import new_reviewer
    from kuhr_pipeline.identity.new_keys import init_keys

    keys = tmp_path / "keys"
    master, signing = keys / "pseudonym.key", keys / "signing.pem"
    init_keys(master, signing, None, keys)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT_INSTANCE, home / "dagster.yaml")  # the project's own: its pools and limits
    monkeypatch.setenv("KUHR_PSEUDONYM_KEY_FILE", str(master))
    monkeypatch.setenv("KUHR_SIGNING_KEY_FILE", str(signing))
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("KUHR_DELIVERIES", str(tmp_path / "deliveries"))
    reviewers = keys / "reviewers"  # registered: anna and bjorn; their private keys beside the folder
    reviewers.mkdir()
    for name in ("anna", "bjorn"):
        new_reviewer(name, keys)
        shutil.copy(keys / f"{name}.pub", reviewers / f"{name}.pub")
    monkeypatch.setenv("KUHR_REVIEWERS", str(reviewers))
    monkeypatch.setenv("KUHR_RAN_BY", "preparer")
    monkeypatch.delenv("KUHR_REQUIRED_REVIEWS", raising=False)
    return {
        "reviewers": reviewers,
        "anna": keys / "anna.key",
        "bjorn": keys / "bjorn.key",
        "master": master,
        "signing": signing,
        "signing_pub": keys / "signing.pub",
        "home": home,
        "deliveries": tmp_path / "deliveries",
    }


class PostgresDatabase:
    """A fresh database on the machine's PostgreSQL (trust auth), dropped afterwards."""

    def __init__(self) -> None:
        import uuid

        self.name = f"kuhr_test_{uuid.uuid4().hex[:12]}"
        self._admin("CREATE DATABASE")

    def _admin(self, statement: str) -> None:
        import psycopg2

        admin = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
        admin.autocommit = True
        try:
            with admin.cursor() as cursor:
                cursor.execute(f'{statement} "{self.name}"' + (" WITH (FORCE)" if statement.startswith("DROP") else ""))
        finally:
            admin.close()

    def drop(self) -> None:
        self._admin("DROP DATABASE IF EXISTS")

    def query(self, sql: str) -> list[tuple]:
        import psycopg2

        connection = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname=self.name)
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql)
                return list(cursor.fetchall())
        finally:
            connection.close()

    def home(self, folder: Path) -> dict[str, str]:
        """A DAGSTER_HOME with the production deploy/dagster.yaml, and the variables it reads."""
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "dagster.yaml").write_text((REPO / "deploy" / "dagster.yaml").read_text())
        return {
            "DAGSTER_HOME": str(folder),
            "DAGSTER_PG_HOST": "127.0.0.1",
            "DAGSTER_PG_PORT": "5432",
            "DAGSTER_PG_USER": "postgres",
            "DAGSTER_PG_PASSWORD": "unused-trust-auth",
            "DAGSTER_PG_DB": self.name,
            "DAGSTER_COMPUTE_LOG_DIR": str(folder / "compute_logs"),
        }


@pytest.fixture
def postgres_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    database = PostgresDatabase()
    env = database.home(tmp_path / "pg_home")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    yield {"home": Path(env["DAGSTER_HOME"]), "env": env, "database": database.name, "query": database.query}
    database.drop()
