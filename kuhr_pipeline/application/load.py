"""Loading an application spec: from a file to a checked spec, or a refusal naming every problem."""

from __future__ import annotations

import difflib
import hashlib
import json
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import get_args

import yaml
from pydantic import BaseModel, ValidationError

from kuhr_pipeline import clock
from kuhr_pipeline.application.model import ApplicationSpec
from kuhr_pipeline.application.rules import advisories, borrowed_domain, population_file, recipient_keys, refusals
from kuhr_pipeline.application.yaml_safe import MAX_SPEC_BYTES, parse_yaml
from kuhr_pipeline.errors import Problem, SpecRefused


@dataclass(frozen=True)
class LoadedSpec:
    """A spec that may run, with what the pipeline needs beside it."""

    spec: ApplicationSpec
    path: Path
    sha256: str
    recipient_keys: dict[str, bytes] = field(repr=False)
    advisories: list[str] = field(default_factory=list)
    population_file: Path | None = None  # encrypted; read only where the population key is
    population_sha256: str | None = None

    @property
    def application_id(self) -> str:
        return self.spec.application_id


def _read(path: Path) -> str:
    where = str(path)
    if not path.is_file():
        raise SpecRefused.single(where, "(file)", "no such spec file", "give the path of an application YAML file")
    if path.stat().st_size > MAX_SPEC_BYTES:
        raise SpecRefused.single(
            where, "(file)", f"larger than {MAX_SPEC_BYTES // 1024} KiB", "a spec is a short hand-written YAML file"
        )
    try:
        return path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecRefused.single(where, "(file)", f"cannot be read as UTF-8 text ({exc.__class__.__name__})") from None


def _field_name(loc: tuple[int | str, ...]) -> str:
    name = ""
    for part in loc:
        if isinstance(part, int):
            name += f"[{part}]"
        elif part in ("str", "VariableRequest", "DiagnosesBySystem", "list[constrained-str]"):
            continue  # union branch names pydantic adds; not a field
        else:
            name += ("." if name else "") + ("from" if part == "from_" else str(part))
    return name or "(top level)"


# A value given in one shape of a union (a mapping where a list would also do) fails the other
# shapes by type too; those failures say nothing when the chosen shape has errors of its own.
_WRONG_SHAPE = frozenset({"list_type", "model_type", "model_attributes_type", "dict_type", "string_type"})


def _pydantic_problems(where: str, error: ValidationError) -> list[Problem]:
    problems: dict[str, Problem] = {}
    errors = [(err, _field_name(tuple(err["loc"]))) for err in error.errors()]
    named = [name for err, name in errors if err["type"] not in _WRONG_SHAPE]
    for err, name in errors:
        if err["type"] in _WRONG_SHAPE and any(other.startswith(name + ".") for other in named):
            continue
        if err["type"] == "extra_forbidden":
            text, fix = "is not a key of the application spec contract", _closest_key(name)
        elif err["type"] == "missing":
            text, fix = "is required but missing", "add it"
        else:
            text, fix = err["msg"].rstrip("."), ""
        problems.setdefault(name, Problem(where, name, text, fix))
    return list(problems.values())


def _known_keys() -> set[str]:
    """Every key the spec's models know (by the name a spec writes), for "did you mean"."""
    keys: set[str] = set()
    models: list[type[BaseModel]] = [ApplicationSpec]
    seen: set[type[BaseModel]] = set()
    while models:
        model = models.pop()
        if model in seen:
            continue
        seen.add(model)
        for name, info in model.model_fields.items():
            keys.add(info.alias or name)
            for inner in _models_in(info.annotation):
                models.append(inner)
    return keys


def _models_in(annotation: object) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]


def _closest_key(dotted: str) -> str:
    """The fix for an unknown key: the closest known key, when one is close."""
    last = dotted.rsplit(".", 1)[-1]
    close = difflib.get_close_matches(last, sorted(_known_keys()), n=1, cutoff=0.75)
    return f"did you mean '{close[0]}'?" if close else "remove it or correct its spelling"


def canonical_sha256(
    spec: ApplicationSpec, recipient_keys: dict[str, bytes], population_sha256: str | None = None
) -> str:
    """The spec's hash over what it says, not how it is written: the parsed spec as canonical JSON
    (comments, key order, quoting and whitespace do not change it) with its recipients' keys (a
    new key is a new delivery). It names the spec in runs, manifests and the audit log, and an
    unchanged hash is what keeps a spec from being delivered twice by accident."""
    text = json.dumps(
        canonical_body(spec, recipient_keys, population_sha256),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# Optional fields added after specs were first hashed: left out when not given, so a spec that
# does not use them keeps the hash it had (and stays "delivered" for the one gate).
_LATER_OPTIONAL = {"approval": ("decision_id", "approved_by")}


def canonical_body(
    spec: ApplicationSpec, recipient_keys: dict[str, bytes], population_sha256: str | None = None
) -> dict[str, object]:
    """What the canonical hash is taken over (and what the deliveries' spec archive keeps): the
    parsed spec, the SHA-256 of each recipient's key and of the encrypted population file (when
    there is one). No person data is in it."""
    dumped = spec.model_dump(mode="json", by_alias=True)
    for section, names in _LATER_OPTIONAL.items():
        for name in names:
            if dumped[section].get(name) is None:
                dumped[section].pop(name, None)
    return {
        "spec": dumped,
        "recipient_keys": {name: hashlib.sha256(key).hexdigest() for name, key in sorted(recipient_keys.items())},
        **({"population_file_sha256": population_sha256} if population_sha256 else {}),
    }


def spec_files(folder: Path) -> list[Path]:
    """The spec files in an applications folder (`*.yaml` and `*.yml`), in name order."""
    return sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")])


def load_spec(path: str | Path, *, today: date | None = None, draft: bool = False) -> LoadedSpec:
    """Load and check a spec; raises SpecRefused listing every problem found. `draft`: a spec not
    approved yet (`approval.status: draft`) passes, for a feasibility estimate, never a delivery."""
    path = Path(path)
    where = str(path)
    today = today or clock.today()
    text = _read(path)
    try:
        raw = parse_yaml(text)
    except (yaml.YAMLError, ValueError, TypeError, OverflowError, RecursionError) as exc:
        # the constructors raise ValueError for impossible dates and the like (found by fuzzing)
        raise SpecRefused.single(where, "(file)", f"YAML does not parse: {exc}".replace("\n", " ")) from None
    if not isinstance(raw, dict):
        raise SpecRefused.single(where, "(top level)", "must be a mapping of keys to values", "see applications/")
    try:
        spec = ApplicationSpec.model_validate(raw)
    except ValidationError as exc:
        raise SpecRefused(_pydantic_problems(where, exc)) from None
    problems = refusals(spec, where, today, draft=draft)
    keys, key_problems = recipient_keys(spec, path)
    population, population_sha256, population_problems = population_file(spec, path)
    problems += key_problems + population_problems + borrowed_domain(spec, path)
    if problems:
        raise SpecRefused(problems)
    return LoadedSpec(
        spec=spec,
        path=path,
        sha256=canonical_sha256(spec, keys, population_sha256),
        recipient_keys=keys,
        population_file=population,
        population_sha256=population_sha256,
        advisories=advisories(spec),
    )
