"""The delivery audit log: one hash-chained JSON line per published delivery.

Each line holds `prev_sha256`, the SHA-256 of the previous line's bytes (the first line: 64 zeros),
so an edited, removed or reordered line breaks the chain. `verify_audit` also checks that every
delivery folder under the deliveries root has its line.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from pathlib import Path
from typing import Any

GENESIS = "0" * 64
AUDIT_LOG = "audit.jsonl"


def _last_line(path: Path) -> bytes | None:
    if not path.exists():
        return None
    lines = path.read_bytes().splitlines()
    return lines[-1] if lines else None


def append_audit(path: Path, record: dict[str, Any]) -> None:
    """Append one record, chained to the last line; locked so concurrent runs cannot interleave."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            last = _last_line(path)
            prev = hashlib.sha256(last).hexdigest() if last else GENESIS
            line = json.dumps({**record, "prev_sha256": prev}, sort_keys=True, ensure_ascii=False).encode("utf-8")
            f.write(line + b"\n")
            f.flush()
            os.fsync(f.fileno())
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def verify_audit(path: Path, deliveries_root: Path | None = None) -> list[str]:
    """Problems with the log (empty: intact)."""
    problems: list[str] = []
    if not path.exists():
        lines: list[bytes] = []
    else:
        lines = path.read_bytes().splitlines()
    prev = GENESIS
    seen: set[tuple[str, str]] = set()
    for number, line in enumerate(lines, start=1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            problems.append(f"{path}: line {number}: is not JSON (edited)")
            prev = hashlib.sha256(line).hexdigest()
            continue
        if record.get("prev_sha256") != prev:
            problems.append(
                f"{path}: line {number}: does not chain to the line before it (edited, removed or reordered)"
            )
        prev = hashlib.sha256(line).hexdigest()
        seen.add((str(record.get("application_id")), str(record.get("delivery_id"))))
    if deliveries_root is not None and deliveries_root.exists():
        for manifest in sorted(deliveries_root.glob("*/*/manifest.json")):
            folder = manifest.parent
            if folder.name.startswith("."):
                continue
            if (folder.parent.name, folder.name) not in seen:
                problems.append(f"{folder}: delivery has no line in {path}")
    return problems
