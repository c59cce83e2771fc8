"""The deliveries folder's layout, known here only: a prepared package waits in
`<root>/<application_id>/.pending/<delivery_id>/` (hidden, owner-only) until reviewers release it
to `<root>/<application_id>/<delivery_id>/`; a delivery is a folder with its manifest, and a
delivery id starts with the UTC time it was made."""

from __future__ import annotations

import secrets
from datetime import date, datetime
from pathlib import Path

from kuhr_pipeline import clock
from kuhr_pipeline.delivery.manifest import MANIFEST

PENDING = ".pending"
SPECS = "specs"


def new_delivery_id(now: datetime | None = None) -> str:
    """Sorts by creation time; the random suffix keeps two runs in the same second apart."""
    now = now or clock.now()
    return now.strftime("%Y%m%dT%H%M%S") + f"{now.microsecond // 1000:03d}Z-" + secrets.token_hex(3)


def published_deliveries(root: Path, application_id: str = "*") -> list[Path]:
    """Published delivery folders (of one application, or all), oldest first within an application.
    Hidden folders (a publish in progress) are not published."""
    if not root.exists():
        return []
    return sorted(
        m.parent
        for m in root.glob(f"{application_id}/*/{MANIFEST}")
        if not m.parent.name.startswith(".") and m.parent.name != SPECS
    )


def pending_folder(root: Path, application_id: str, delivery_id: str) -> Path:
    """Where a prepared package waits for its reviewers."""
    return root / application_id / PENDING / delivery_id


def released_folder(root: Path, application_id: str, delivery_id: str) -> Path:
    """Where a released delivery is, for its recipients to fetch."""
    return root / application_id / delivery_id


def pending_deliveries(root: Path, application_id: str = "*") -> list[Path]:
    """Prepared packages waiting for release (of one application, or all), oldest first."""
    if not root.exists():
        return []
    return sorted(m.parent for m in root.glob(f"{application_id}/{PENDING}/*/{MANIFEST}"))


def spec_archive(root: Path, application_id: str, spec_sha256: str) -> Path:
    """Where the canonical spec a package was prepared from is kept (a spec holds no person data)."""
    return root / application_id / SPECS / f"{spec_sha256}.yaml"


def delivery_day(folder: Path) -> date | None:
    """The UTC day a delivery was made, from its id (None for a folder not named by an id)."""
    try:
        return datetime.strptime(folder.name[:8], "%Y%m%d").date()
    except ValueError:
        return None
