"""An application's deliveries, read from the audit log: what was delivered, when, from which spec.

Read as plain JSON lines: the log's integrity is `audit verify`'s (and `deliver` refuses to run
on a log that fails it), so a line that does not parse is skipped here, not judged.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kuhr_pipeline.delivery.audit import AUDIT_LOG
from kuhr_pipeline.delivery.manifest import MANIFEST
from kuhr_pipeline.errors import KuhrError, Problem


class AlreadyDelivered(KuhrError):
    """An unchanged spec delivered before into the same deliveries folder: each delivery is a
    disclosure, so a second one is made on purpose only (`deliver --again`)."""


def deliveries_of(deliveries_root: Path, application_id: str | None = None) -> list[dict[str, Any]]:
    """The delivery lines (of one application, or all), oldest first, each with what a person
    asks of it: time, ids, spec hash, recipients and files counted, who ran it."""
    path = deliveries_root / AUDIT_LOG
    if not path.exists():
        return []
    out = []
    for line in path.read_bytes().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if not isinstance(record, dict) or record.get("event") != "delivery":
            continue
        if application_id is not None and record.get("application_id") != application_id:
            continue
        folder = deliveries_root / str(record.get("application_id")) / str(record.get("delivery_id"))
        out.append(
            {
                "time": record.get("time"),
                "application_id": record.get("application_id"),
                "delivery_id": record.get("delivery_id"),
                "spec_sha256": record.get("spec_sha256", ""),
                "manifest_sha256": record.get("manifest_sha256"),
                "recipients": len(record.get("recipients", [])),
                "files": _files(folder),
                "ran_by": record.get("ran_by"),
                "path": str(folder),
            }
        )
    return out


def _files(folder: Path) -> int | None:
    """Files listed in the delivery's manifest (None when the folder is gone)."""
    try:
        return len(json.loads((folder / MANIFEST).read_text(encoding="utf-8")).get("files", []))
    except (OSError, ValueError):
        return None


def refuse_repeat(deliveries_root: Path, application_id: str, spec_sha256: str, spec_path: Path) -> None:
    """Raise AlreadyDelivered when this spec (by its canonical hash) was delivered there before."""
    earlier = [r for r in deliveries_of(deliveries_root, application_id) if r.get("spec_sha256") == spec_sha256]
    if earlier:
        last = earlier[-1]
        raise AlreadyDelivered(
            [
                Problem(
                    str(spec_path),
                    "(spec)",
                    f"is unchanged since delivery {last.get('delivery_id')} of {last.get('time')} "
                    f"into {deliveries_root} (spec sha256 {spec_sha256[:16]}); every delivery is a disclosure",
                    "pass --again to deliver it once more on purpose",
                )
            ]
        )
