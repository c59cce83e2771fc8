"""Moves the pipeline's clock (kuhr_pipeline.clock) to another day in every Python process of a
test run, subprocesses (the CLI, Dagster's webserver and daemon, Celery workers) included:

    KUHR_TEST_TODAY=2031-06-01 PYTHONPATH=tests/clock .venv/bin/pytest

Only for tests: it lives outside the package, so a deployed pipeline never reads the variable.
Time keeps running from that day's current time of day; nothing else (sleeps, timeouts, the
database server) is touched, which libfaketime could not promise here.
"""

import os

if os.environ.get("KUHR_TEST_TODAY"):
    from datetime import UTC, date, datetime

    import kuhr_pipeline.clock as _clock

    _real_now = _clock.now
    _shift = date.fromisoformat(os.environ["KUHR_TEST_TODAY"]) - datetime.now(UTC).date()

    def _shifted_now() -> datetime:
        return _real_now() + _shift

    _shifted_now.shifted = True  # type: ignore[attr-defined]
    _clock.now = _shifted_now
