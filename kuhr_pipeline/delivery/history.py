"""An application's deliveries, read from the audit log: what was delivered, when, from which spec.

Read as plain JSON lines: the log's integrity is `audit verify`'s (and `deliver` refuses to run
on a log that fails it), so a line that does not parse is skipped here, not judged.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kuhr_pipeline.delivery.audit import AUDIT_LOG
from kuhr_pipeline.errors import KuhrError, Problem


class AlreadyDelivered(KuhrError):
    """An unchanged spec delivered before into the same deliveries folder: each delivery is a
    disclosure, so a second one is made on purpose only (`deliver --again`)."""


def deliveries_of(deliveries_root: Path, application_id: str) -> list[dict[str, Any]]:
    """The application's delivery lines, oldest first."""
    path = deliveries_root / AUDIT_LOG
    if not path.exists():
        return []
    out = []
    for line in path.read_bytes().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if (
            isinstance(record, dict)
            and record.get("event") == "delivery"
            and record.get("application_id") == application_id
        ):
            out.append(record)
    return out


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
