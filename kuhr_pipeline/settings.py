"""Where things are: the environment variables of the command-line contract and their defaults."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
BUNDLED_SAMPLE = PROJECT_ROOT / "data" / "sample"
PSEUDONYM_KEY_VARIABLE = "KUHR_PSEUDONYM_KEY_FILE"
SIGNING_KEY_VARIABLE = "KUHR_SIGNING_KEY_FILE"


POPULATION_KEY_VARIABLE = "KUHR_POPULATION_KEY_FILE"


def population_key_file() -> str | None:
    """The registry's Crypt4GH secret key that projects encrypt their population files to."""
    return os.environ.get(POPULATION_KEY_VARIABLE)


def pseudonym_key_file() -> str | None:
    return os.environ.get(PSEUDONYM_KEY_VARIABLE)


def signing_key_file() -> str | None:
    return os.environ.get(SIGNING_KEY_VARIABLE)


CELERY_BROKER_VARIABLE = "KUHR_CELERY_BROKER"


def celery_broker() -> str:
    """The Celery broker `deliver --executor celery` sends steps to (RabbitMQ on this machine by default)."""
    return os.environ.get(CELERY_BROKER_VARIABLE, "pyamqp://guest:guest@127.0.0.1:5672//")


CELERY_QUEUE_VARIABLE = "KUHR_CELERY_QUEUE"


def celery_queue() -> str:
    """The Celery queue of this deployment: its workers consume it alone (`worker start -q`), so
    a run's steps never reach another deployment's workers on a shared broker."""
    return os.environ.get(CELERY_QUEUE_VARIABLE, "kuhr-pipeline")


def _env_path(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    return Path(value) if value else default


def source_dir(override: str | None = None) -> Path:
    return Path(override) if override else _env_path("KUHR_SOURCE", BUNDLED_SAMPLE)


def deliveries_dir(override: str | None = None) -> Path:
    return Path(override) if override else _env_path("KUHR_DELIVERIES", Path("deliveries"))


def applications_dir(override: str | None = None) -> Path:
    return Path(override) if override else _env_path("KUHR_APPLICATIONS", Path("applications"))


def dagster_home() -> Path:
    return _env_path("DAGSTER_HOME", PROJECT_ROOT / "dagster_home")


def staging_root() -> Path:
    """Intermediate results of every run: inside DAGSTER_HOME, never in the delivery folder."""
    return dagster_home() / "staging"


def source_checks_dir() -> Path:
    """Signed records of the source's years found without a repeated claim id (source/claim_ids.py):
    inside DAGSTER_HOME, next to staging; file identities and counts only."""
    return dagster_home() / "source-checks"


def staging_dir(application_id: str, run_id: str | None = None) -> Path:
    """One application's staging (`run_id`: one run's, inside it)."""
    folder = staging_root() / application_id
    return folder / run_id if run_id else folder
