"""Building the expectation suites: the JSON files in `expectations/` (packaged with the code),
extended at run time with expectations built from the variable catalogue for exactly the
approved variables.

Expectations are plain dicts here (`{"type", "kwargs"}`, the GX 1.x suite format) so building a
suite costs no GX import; `validate.py` turns them into GX objects.
"""

from __future__ import annotations

import json
import os
from importlib.resources import files
from pathlib import Path
from typing import Any

from kuhr_pipeline.application.model import ApplicationSpec
from kuhr_pipeline.application.plan import PSEUDONYMS
from kuhr_pipeline.catalogue import load_catalogue
from kuhr_pipeline.extract.generalise import GENERALISATIONS, UNKNOWN, mapped_expectation
from kuhr_pipeline.identity.population import LOPENR_PATTERN

LEAK_GUARD = "expect_column_values_to_hold_no_fodselsnummer"
REGEX = "expect_column_values_to_match_regex"
LIST_TYPES = ("list<string>",)

Expectation = dict[str, Any]


def load_suite_file(name: str) -> list[Expectation]:
    """A suite file: from KUHR_EXPECTATIONS when set, else the one packaged with the code
    (`kuhr_pipeline/quality/expectations/`, which the repository's `expectations/` links to)."""
    configured = os.environ.get("KUHR_EXPECTATIONS")
    suite = Path(configured) / f"{name}.json" if configured else files(__package__) / "expectations" / f"{name}.json"
    raw = json.loads(suite.read_text(encoding="utf-8"))
    return list(raw["expectations"])


def catalogue_expectations(spec: ApplicationSpec, columns: list[tuple[str, str]]) -> list[Expectation]:
    """Expectations for each delivered (name, generalisation), from the catalogue and the spec."""
    catalogue = load_catalogue()
    out: list[Expectation] = [
        {"type": "expect_table_columns_to_match_ordered_list", "kwargs": {"column_list": [name for name, _ in columns]}}
    ]

    def add(kind: str, column: str, **kwargs: Any) -> None:
        out.append({"type": kind, "kwargs": {"column": column, **kwargs}})

    start, end = spec.period.from_, spec.period.to
    for name, how in columns:
        variable = catalogue.variable(name)
        if not variable.nullable:
            add("expect_column_values_to_not_be_null", name)
        mapped = map_expectations(spec, [(name, how)])
        rule = GENERALISATIONS[how].expectation(start, end)
        if mapped:
            out += mapped
        elif rule is not None:
            kind, kwargs = rule
            add(kind, name, **kwargs)
        elif variable.code_list:
            value_set: list[Any] = list(catalogue.codes(variable))
            if variable.type.startswith("int"):
                value_set = [int(v) for v in value_set]
            add("expect_column_values_to_be_in_set", name, value_set=value_set)
        elif variable.value_range:
            add(
                "expect_column_values_to_be_between",
                name,
                min_value=variable.value_range[0],
                max_value=variable.value_range[1],
            )
        elif name == "pasient_pseudonym" and spec.pseudonym_form == "lopenr":
            add(REGEX, name, regex=LOPENR_PATTERN.pattern)
        elif variable.pattern:
            add(REGEX, name, regex=variable.pattern)
        made_here = name in PSEUDONYMS and not (name == "pasient_pseudonym" and spec.pseudonym_form == "lopenr")
        guarded = not made_here and variable.role != "claim_identifier"  # a project's løpenummer is guarded too
        if guarded and (variable.type == "string" or variable.type in LIST_TYPES):
            add(LEAK_GUARD, name)
    return out


def map_expectations(spec: ApplicationSpec, columns: list[tuple[str, str]]) -> list[Expectation]:
    """Under a geography map, each kommune (fylke) column holds kommuner (fylker) of the map or
    "ukjent"; the "ukjent" are counted, never failed (a number that was no kommune in its year)."""
    map_year = spec.map_year
    if map_year is None:
        return []
    out: list[Expectation] = []
    for name, how in columns:
        if GENERALISATIONS[how].geographic:
            kind, kwargs = mapped_expectation(how, map_year)
            out.append({"type": kind, "kwargs": {"column": name, **kwargs}})
            out.append(
                {
                    "type": "expect_column_values_to_not_be_in_set",
                    "kwargs": {"column": name, "value_set": [UNKNOWN], "mostly": 0.0},
                }
            )
    return out


def claims_suite(spec: ApplicationSpec, columns: list[tuple[str, str]]) -> list[Expectation]:
    """The file suite (for delivered columns only) plus the catalogue's expectations."""
    delivered = {name for name, _ in columns}
    from_file = [e for e in load_suite_file("claims") if e["kwargs"].get("column", next(iter(delivered))) in delivered]
    if spec.pseudonym_form == "lopenr":  # the file's pattern is the keyed pseudonyms'; løpenumre have their own
        from_file = [e for e in from_file if (e["type"], e["kwargs"].get("column")) != (REGEX, "pasient_pseudonym")]
    return _unique(from_file + catalogue_expectations(spec, columns))


def _unique(expectations: list[Expectation]) -> list[Expectation]:
    seen: set[str] = set()
    out = []
    for e in expectations:
        key = json.dumps(e, sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append(e)
    return out
