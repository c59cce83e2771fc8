"""Finding an application's spec by its application_id, never by pasting an id into a path.

A partition key reaches a run from the UI's API, a sensor or the command line; it is checked
against the application_id pattern before any file is read, and the spec is the one file in
KUHR_APPLICATIONS whose `application_id` is that id, whatever the file is called.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from kuhr_pipeline.application.load import spec_files
from kuhr_pipeline.application.model import APPLICATION_ID_PATTERN
from kuhr_pipeline.application.yaml_safe import MAX_SPEC_BYTES, parse_yaml
from kuhr_pipeline.errors import SpecRefused


def require_application_id(value: str, where: str) -> str:
    """`value` if it is a valid application_id; a SpecRefused naming `where` otherwise."""
    if not re.fullmatch(APPLICATION_ID_PATTERN, value):
        raise SpecRefused.single(
            where,
            "application_id",
            f"{value!r} is not an application id (letters, digits, '.', '_', '-'; at most 64)",
            "use the application_id of an approved spec as the partition key",
        )
    return value


def declared_field(path: Path, name: str) -> object:
    """A top-level field as the spec file declares it, unchecked (None if the file cannot be read
    as a spec): what a refused file still tells about itself."""
    try:
        if path.stat().st_size > MAX_SPEC_BYTES:
            return None
        body = parse_yaml(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError, ValueError):
        return None
    return body.get(name) if isinstance(body, dict) else None


def declared_id(path: Path) -> str | None:
    """The `application_id` a spec file declares (None if the file cannot be read as a spec)."""
    value = declared_field(path, "application_id")
    return value if isinstance(value, str) else None


def find_spec(folder: Path, application_id: str) -> Path:
    """The one spec file in `folder` that declares `application_id`."""
    require_application_id(application_id, str(folder))
    found = [path for path in spec_files(folder) if declared_id(path) == application_id]
    if not found:
        raise SpecRefused.single(
            str(folder),
            "application_id",
            f"no spec file declares application_id {application_id}",
            "put the approved spec in KUHR_APPLICATIONS, or remove the partition",
        )
    if len(found) > 1:
        raise SpecRefused.single(
            ", ".join(str(p) for p in found),
            "application_id",
            f"{len(found)} spec files declare application_id {application_id}",
            "keep one spec file per application",
        )
    return found[0]
