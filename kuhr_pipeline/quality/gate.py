"""The validation gate between extract and delivery.

The blocking check records its (scrubbed) report beside the staged extract, with a fingerprint
(size and modification time) of every file it validated. The delivery publishes only files whose
fingerprint matches a successful report: nothing that failed, or was never validated, leaves.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kuhr_pipeline.errors import DeliveryError
from kuhr_pipeline.quality.validate import ValidationReport
from kuhr_pipeline.staging import Staging

VALIDATION = "validation"


def _fingerprint(path: Path) -> list[int]:
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns]


def report_path(work_dir: Path, suite: str) -> Path:
    return work_dir / VALIDATION / f"{suite}.json"


def record_report(staging: Staging, report: ValidationReport, files: list[Path]) -> Path:
    body = {**report.to_json(), "files": {str(f): _fingerprint(f) for f in files}}
    return staging.sub(VALIDATION).write_small(f"{report.suite}.json", json.dumps(body, indent=2).encode("utf-8"))


def passed_report(work_dir: Path, suite: str, files: list[Path]) -> dict[str, Any]:
    """The successful report for exactly these files, or a DeliveryError saying why not."""
    path = report_path(work_dir, suite)
    if not path.exists():
        raise DeliveryError.single(
            str(path),
            suite,
            "has not been validated",
            "materialise the asset together with its checks (job deliver_application)",
        )
    body = json.loads(path.read_text(encoding="utf-8"))
    if not body.get("success"):
        raise DeliveryError.single(
            str(path),
            suite,
            "failed validation; nothing is delivered",
            "see the failed expectations in the check's metadata",
        )
    expected = {str(f): _fingerprint(f) for f in files}
    if body.get("files") != expected:
        raise DeliveryError.single(
            str(path),
            suite,
            "was validated for other files than those staged now",
            "run the job again so the checks see the current extract",
        )
    return {k: v for k, v in body.items() if k != "files"}
