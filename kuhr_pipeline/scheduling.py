"""When a recurring delivery is due: once per calendar month, quarter or year while approved.

Due means: no package of the application (prepared or released) since the current period
began. A missed or failed tick is therefore caught up on the next one, and a delivery made by
hand (or by the sensor) in the period counts.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from kuhr_pipeline.delivery.history import deliveries_of


def period_start(schedule: str, today: date) -> date:
    if schedule == "monthly":
        return today.replace(day=1)
    if schedule == "quarterly":
        return date(today.year, 3 * ((today.month - 1) // 3) + 1, 1)
    if schedule == "yearly":
        return date(today.year, 1, 1)
    raise ValueError(f"unknown schedule {schedule!r}")


def period_label(schedule: str, today: date) -> str:
    start = period_start(schedule, today)
    return {
        "monthly": f"{start:%Y-%m}",
        "quarterly": f"{start.year}-Q{(start.month - 1) // 3 + 1}",
        "yearly": f"{start.year}",
    }[schedule]


def last_delivery_date(deliveries_root: Path, application_id: str) -> date | None:
    """The UTC day of the application's newest package, prepared or released (a rejected one does
    not count: the period's delivery is still owed, and the next tick prepares it again)."""
    days = [
        date.fromisoformat(str(e["time"])[:10])
        for e in deliveries_of(deliveries_root, application_id)
        if e["state"] != "rejected" and e["time"]
    ]
    return max(days, default=None)


def is_due(schedule: str, today: date, last_delivery: date | None) -> bool:
    return last_delivery is None or last_delivery < period_start(schedule, today)


def next_period_start(schedule: str, today: date) -> date:
    start = period_start(schedule, today)
    months = {"monthly": 1, "quarterly": 3, "yearly": 12}[schedule]
    month = start.month - 1 + months
    return date(start.year + month // 12, month % 12 + 1, 1)


def next_delivery(schedule: str, today: date, last_delivery: date | None, valid_until: date) -> str:
    """When the schedule delivers next, in words: today (due; overdue when the period's package
    is owed since an earlier day), from the next period's start, or never, when the approval ends first."""
    due = is_due(schedule, today, last_delivery)
    day = today if due else next_period_start(schedule, today)
    if day > valid_until:
        return f"none: the approval ends on {valid_until}"
    start = period_start(schedule, today)
    late = f", overdue since {start}" if due and start < today and last_delivery is not None else ""
    return f"{day} ({schedule}{', due' if due else ''}{late})"


def not_due_reason(schedule: str, today: date, last_delivery: date | None) -> str:
    return f"{schedule} delivery not due until {next_period_start(schedule, today)} (last {last_delivery})"
