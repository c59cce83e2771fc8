"""Suppression patterns kept across the releases of one application.

A recurring statistics delivery that chose its pattern afresh could show in one quarter a cell it
hid in the last, and the two releases taken together would reveal it. So each published
statistics delivery leaves its pattern — which cells were hidden, never their values — beside
the application's deliveries (`<deliveries>/<application_id>/.suppression-pattern.json`, hidden:
it is in no delivery), and the next run treats those cells as primary when they still exist.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa

from kuhr_pipeline.sealed import write_private

PATTERN_FILE = ".suppression-pattern.json"

Key = tuple[object, ...]


def previous_pattern(deliveries_root: Path, application_id: str, dimensions: list[str]) -> set[Key]:
    """The cells the application's last statistics delivery hid (none if its dimensions differ)."""
    path = deliveries_root / application_id / PATTERN_FILE
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return set()
    if body.get("dimensions") != dimensions:
        return set()
    return {tuple(cell) for cell in body.get("suppressed", [])}


def keep_pattern(deliveries_root: Path, application_id: str, dimensions: list[str], table: pa.Table) -> None:
    """Record the delivered table's pattern (written whole or not at all)."""
    rows = zip(*(table.column(d).to_pylist() for d in dimensions), table.column("suppressed").to_pylist(), strict=True)
    body = {"dimensions": dimensions, "suppressed": [list(row[:-1]) for row in rows if row[-1]]}
    write_private(deliveries_root / application_id / PATTERN_FILE, json.dumps(body).encode("utf-8"))
