"""The KUHR variable catalogue, loaded from `catalogue.yaml` into typed objects.

One catalogue serves three readers: the spec checker (which variables and generalisations
exist), the validation suites (domains) and the codebook (descriptions and code lists).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files
from typing import Any, Literal

import yaml

Role = Literal["direct_identifier", "quasi_identifier", "sensitive", "claim_identifier", "free_text", "other"]


@dataclass(frozen=True)
class CodeList:
    name: str
    title: str
    codes: dict[str, str]
    primary_care: tuple[str, ...] = ()


@dataclass(frozen=True)
class Variable:
    name: str
    no: str
    en: str
    type: str
    role: Role
    generalisations: tuple[str, ...]
    nullable: bool
    code_list: str | None = None
    value_range: tuple[float, float] | None = None
    pattern: str | None = None
    derived: bool = False
    group_by: bool = False

    @property
    def deliverable(self) -> bool:
        return self.role != "direct_identifier"


@dataclass(frozen=True)
class Measure:
    name: str
    no: str
    en: str
    type: str


@dataclass(frozen=True)
class Catalogue:
    variables: dict[str, Variable]
    measures: dict[str, Measure]
    code_lists: dict[str, CodeList] = field(default_factory=dict)

    def variable(self, name: str) -> Variable:
        return self.variables[name]

    def codes(self, variable: Variable) -> dict[str, str]:
        return self.code_lists[variable.code_list].codes if variable.code_list else {}

    @property
    def primary_care_practice_types(self) -> frozenset[str]:
        return frozenset(self.code_lists["praksistype"].primary_care)


def _variable(raw: dict[str, Any]) -> Variable:
    domain = raw.get("domain") or {}
    value_range = domain.get("range")
    return Variable(
        name=raw["name"],
        no=raw["description_no"],
        en=raw["description_en"],
        type=raw["type"],
        role=raw["role"],
        generalisations=tuple(raw.get("generalisations", [])),
        nullable=bool(raw["nullable"]),
        code_list=domain.get("code_list"),
        value_range=(float(value_range[0]), float(value_range[1])) if value_range else None,
        pattern=domain.get("pattern"),
        derived=bool(raw.get("derived", False)),
        group_by=bool(raw.get("group_by", False)),
    )


@cache
def load_catalogue() -> Catalogue:
    """The packaged catalogue (parsed once per process)."""
    text = files(__package__).joinpath("catalogue.yaml").read_text(encoding="utf-8")
    raw = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # our own file: libyaml, 10 × faster
    return Catalogue(
        variables={v["name"]: _variable(v) for v in raw["variables"]},
        measures={
            m["name"]: Measure(m["name"], m["description_no"], m["description_en"], m["type"]) for m in raw["measures"]
        },
        code_lists={
            name: CodeList(
                name=name,
                title=cl["title"],
                codes={str(k): str(v) for k, v in cl["codes"].items()},
                primary_care=tuple(cl.get("primary_care", ())),
            )
            for name, cl in raw["code_lists"].items()
        },
    )
