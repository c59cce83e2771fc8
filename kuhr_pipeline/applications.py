"""Every spec file in KUHR_APPLICATIONS, read once per look, as the sensor, the schedule and the
applications overview see it: approved (deliverable), or not (refused, expired, withdrawn …) and why.

Two files that declare one application_id are both not deliverable: a run finds its spec by its
id, and could not tell which one was approved.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from kuhr_pipeline.application import LoadedSpec, load_spec, spec_files
from kuhr_pipeline.application.find import declared_field, declared_id
from kuhr_pipeline.delivery.history import deliveries_of
from kuhr_pipeline.errors import KuhrError
from kuhr_pipeline.scheduling import next_delivery

NOT_APPROVED = ("draft", "rejected", "withdrawn")


@dataclass(frozen=True)
class SpecFile:
    """One spec file as it is now: `loaded` when it may be delivered, else `status` and `why`."""

    path: Path
    version: str  # sha256 of the file's bytes: a refusal is reported once per version of a file
    application_id: str | None
    loaded: LoadedSpec | None
    status: str  # approved, expired, draft, rejected, withdrawn, refused, unreadable
    why: str = ""

    @property
    def deliverable(self) -> bool:
        return self.loaded is not None


def survey(folder: Path, today: date | None = None) -> list[SpecFile]:
    """Every spec file in `folder`, checked as a run would check it on `today`."""
    files = [_read(path, today) for path in spec_files(folder)]
    declaring = Counter(f.application_id for f in files if f.application_id)
    return [
        SpecFile(
            f.path,
            f.version,
            f.application_id,
            None,
            "refused",
            f"application_id: {f.application_id} is declared by {declaring[f.application_id]} spec files "
            "(keep one spec file per application)",
        )
        if f.application_id and declaring[f.application_id] > 1
        else f
        for f in files
    ]


def _read(path: Path, today: date | None) -> SpecFile:
    try:
        version = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as error:
        return SpecFile(path, "", None, None, "unreadable", f"cannot be read ({error.__class__.__name__})")
    application_id = declared_id(path)
    try:
        loaded = load_spec(path, today=today)
    except KuhrError as refused:
        return SpecFile(path, version, application_id, None, _status_of(path, refused), _why(refused))
    except Exception as error:  # one bad file never stops the others
        return SpecFile(path, version, application_id, None, "unreadable", f"cannot be read ({type(error).__name__})")
    return SpecFile(path, version, loaded.application_id, loaded, "approved")


def _status_of(path: Path, refused: KuhrError) -> str:
    approval = declared_field(path, "approval")
    status = approval.get("status") if isinstance(approval, dict) else None
    if status in NOT_APPROVED:
        return str(status)
    if any(p.field == "approval.valid_until" for p in refused.problems):
        return "expired"
    return "refused"


def _why(refused: KuhrError) -> str:
    """The refusal in one line: each problem's field and text (the file is the row's own)."""
    return "; ".join(f"{p.field}: {p.problem}" for p in refused.problems)


OVERVIEW_COLUMNS = {
    "application_id": "The application's id (its Dagster partition)",
    "file": "The spec file in KUHR_APPLICATIONS",
    "status": "approved, or why it is not delivered: expired, withdrawn, draft, rejected, refused, unreadable",
    "why": "What the spec's check found, field by field (empty when approved)",
    "pending_release": "Packages waiting for a reviewer's release: who prepared each, since when (UTC)",
    "last_delivery": "Time (UTC), id and state of the newest package in the audit log",
    "last_run": "The newest Dagster run of the application: its status (a failed run shows as failed)",
    "approval_ends": "The approval's last day; 'soon' when it ends within 30 days",
    "next_delivery": "When the schedule delivers it next (approved recurring deliveries only), due or overdue",
}
ENDING_SOON_DAYS = 30


def overview(
    files: list[SpecFile], deliveries_root: Path, today: date, last_runs: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """One row per spec file, in the columns of OVERVIEW_COLUMNS, sorted by application id.
    `last_runs`: the newest run's status per application id (from the Dagster instance)."""
    history = deliveries_of(deliveries_root)
    rows = []
    for f in files:
        packages = [r for r in history if r["application_id"] == f.application_id]
        delivered = [r for r in packages if r["state"] != "rejected"]
        pending = [r for r in packages if r["state"] == "prepared"]
        last = delivered[-1] if delivered else None
        schedule = f.loaded.spec.delivery.schedule if f.loaded else None
        upcoming = ""
        if f.loaded is not None and schedule is not None:
            last_day = date.fromisoformat(str(last["time"])[:10]) if last else None
            upcoming = next_delivery(schedule, today, last_day, f.loaded.spec.approval.valid_until)
        rows.append(
            {
                "application_id": f.application_id or "",
                "file": f.path.name,
                "status": f.status,
                "why": f.why,
                "pending_release": "; ".join(f"{r['delivery_id']} by {r['ran_by']} since {r['time']}" for r in pending),
                "last_delivery": f"{last['time']} ({last['delivery_id']}, {last['state']})" if last else "never",
                "last_run": (last_runs or {}).get(f.application_id or "", ""),
                "approval_ends": _approval_ends(f, today),
                "next_delivery": upcoming,
            }
        )
    return sorted(rows, key=lambda r: (r["application_id"], r["file"]))


def _approval_ends(f: SpecFile, today: date) -> str:
    if f.loaded is None:
        return ""
    end = f.loaded.spec.approval.valid_until
    return f"{end} (soon)" if (end - today).days <= ENDING_SOON_DAYS else str(end)
