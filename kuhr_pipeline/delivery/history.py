"""An application's packages, read from the audit log: their state (prepared, released,
rejected), who prepared and who reviewed them, for whom, from which spec and approval; and the one
gate that keeps an unchanged spec from being disclosed twice by accident.

Read as plain JSON lines: the log's integrity is `audit verify`'s (and `deliver` refuses to run
on a log that fails it), so a line that does not parse is skipped here, not judged.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

from kuhr_pipeline.delivery.audit import AUDIT_LOG, AuditLine, Ledger, audit_records, ledgers
from kuhr_pipeline.delivery.folders import pending_folder, released_folder
from kuhr_pipeline.delivery.manifest import MANIFEST
from kuhr_pipeline.errors import KuhrError, Problem

AGAIN_TAG = "kuhr/again"  # a run tag: "true" prepares an unchanged spec once more, on purpose


class AlreadyDelivered(KuhrError):
    """An unchanged spec already prepared or released from the same deliveries folder: each
    delivery is a disclosure, so a second one is made on purpose only (`--again`, or the run
    tag kuhr/again=true)."""


def _parsed(path: Path) -> list[AuditLine]:
    return [AuditLine(number, record) for number, record in enumerate(audit_records(path), start=1)]


def _recipients(value: Any) -> list[dict[str, Any]]:
    """Recipients by name and key fingerprint (lines of before two-phase release hold fingerprints only)."""
    return [r if isinstance(r, dict) else {"name": None, "key_fingerprint": r} for r in value or []]


def _entry(root: Path, application_id: str, delivery_id: str, ledger: Ledger) -> dict[str, Any]:
    first = (ledger.prepared or ledger.delivered or ledger.last).record
    state = ledger.state
    folder = {"released": released_folder, "prepared": pending_folder}.get(state)
    path = folder(root, application_id, delivery_id) if folder else None
    reviewers = ledger.released[-1].record.get("reviewers", []) if ledger.released else []
    if ledger.rejected is not None:
        reviewers = ledger.rejected.record.get("reviewers", [])
    return {
        "time": first.get("time"),
        "application_id": application_id,
        "delivery_id": delivery_id,
        "state": state,
        "decided": ledger.last.record.get("time") if ledger.last is not ledger.prepared else None,
        "spec_sha256": first.get("spec_sha256", ""),
        "manifest_sha256": ledger.manifest_sha256,
        "run_id": first.get("run_id"),
        "trigger": first.get("trigger"),
        "ran_by": first.get("ran_by"),
        "reviewers": reviewers,
        "recipients": _recipients(first.get("recipients")),
        "decision_id": first.get("decision_id"),
        "approved_by": first.get("approved_by"),
        "reason": ledger.rejected.record.get("reason") if ledger.rejected else None,
        "files": _files(path) if path else None,
        "path": str(path) if path else None,
    }


def deliveries_of(deliveries_root: Path, application_id: str | None = None) -> list[dict[str, Any]]:
    """Every package (of one application, or all), oldest first, with what a person asks of it."""
    found, _ = ledgers(_parsed(deliveries_root / AUDIT_LOG))
    entries = [
        _entry(deliveries_root, app, delivery, ledger)
        for (app, delivery), ledger in found.items()
        if application_id is None or app == application_id
    ]
    return sorted(entries, key=lambda e: (str(e["time"]), e["delivery_id"]))


def filtered(
    entries: list[dict[str, Any]], since: date | None, recipient: str | None, state: str | None
) -> list[dict[str, Any]]:
    """`history`'s filters: prepared on or after `since`, to a recipient named so, in a state."""
    return [
        e
        for e in entries
        if (since is None or str(e["time"] or "")[:10] >= since.isoformat())
        and (recipient is None or any(r.get("name") == recipient for r in e["recipients"]))
        and (state is None or e["state"] == state)
    ]


def _files(folder: Path) -> int | None:
    """Files listed in the package's manifest (None when the folder is gone)."""
    try:
        return len(json.loads((folder / MANIFEST).read_text(encoding="utf-8")).get("files", []))
    except (OSError, ValueError):
        return None


def prepared_before(deliveries_root: Path, application_id: str, spec_sha256: str) -> bool:
    """This spec (by its canonical hash) has had a package prepared here, whatever became of it:
    its advisories were said then, and need not be said on every run."""
    return any(e["spec_sha256"] == spec_sha256 for e in deliveries_of(deliveries_root, application_id))


def refuse_repeat(deliveries_root: Path, application_id: str, spec_sha256: str, where: str) -> None:
    """The one gate: raise AlreadyDelivered when this spec (by its canonical hash) has a prepared
    or released package in this deliveries folder's audit log (a rejected one does not count)."""
    earlier = [
        e
        for e in deliveries_of(deliveries_root, application_id)
        if e["spec_sha256"] == spec_sha256 and e["state"] != "rejected"
    ]
    if earlier:
        last = earlier[-1]
        raise AlreadyDelivered(
            [
                Problem(
                    where,
                    "(spec)",
                    f"is unchanged since delivery {last['delivery_id']} of {last['time']} ({last['state']}) "
                    f"into {deliveries_root} (spec sha256 {spec_sha256[:16]}); every delivery is a disclosure",
                    f"pass --again (or the run tag {AGAIN_TAG}=true) to prepare it once more on purpose",
                )
            ]
        )
