"""The pipeline's one clock.

Approval and period rules ask `today()`; delivery ids and manifests ask `now()`. Nothing else in
the package reads the calendar, so tests set the date in this one place (monkeypatch `now`) and
no test depends on the day it runs. The schedule takes its day from the tick's scheduled time.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo


def now() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)


def register_now() -> datetime:
    """The current time as the register writes its timestamps: Norwegian wall-clock time, naive."""
    return now().astimezone(ZoneInfo("Europe/Oslo")).replace(tzinfo=None)


def today() -> date:
    """The machine's local date (the day approvals and periods are checked against)."""
    return now().astimezone().date()
