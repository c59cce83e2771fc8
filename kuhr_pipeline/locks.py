"""One run per application at a time, across processes.

Two runs of one application share its staging folder and Dagster's stored outputs for its
partition; run together they could mix one spec's claims into the other's delivery. `deliver`
holds this lock for its whole run (the kernel drops it when the process ends, however it ends);
runs launched through the run queue get the same guarantee from the instance's tag concurrency
limit on `dagster/partition` (dagster_home/dagster.yaml, deploy/dagster.yaml).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from kuhr_pipeline import settings


@contextmanager
def application_lock(application_id: str, on_wait: Callable[[str], None]) -> Iterator[None]:
    """Hold the application's lock; if another process holds it, say so and wait for it."""
    with _held(f"{application_id}.lock", lambda: on_wait(f"waiting: another run of {application_id} is in progress")):
        yield


@contextmanager
def application_lock_if_free(application_id: str) -> Iterator[bool]:
    """Hold the application's lock if no other process holds it; yields whether it is held."""
    fd = _open(f"{application_id}.lock")
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


@contextmanager
def instance_setup_lock() -> Iterator[None]:
    """Held while opening the Dagster instance: the first opening of a new instance creates its
    SQLite tables, and two processes doing that at once leave two schema versions behind."""
    with _held(".instance.lock", lambda: None):
        yield


@contextmanager
def _held(name: str, on_wait: Callable[[], None]) -> Iterator[None]:
    fd = _open(name)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            on_wait()
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _open(name: str) -> int:
    folder = settings.dagster_home() / "locks"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return os.open(folder / name, os.O_CREAT | os.O_RDWR, 0o600)
