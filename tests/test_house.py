"""The rules of the house (docs/design.md): what keeps the package easy to change."""

from __future__ import annotations

import ast
from pathlib import Path

from kuhr_pipeline.catalogue import load_catalogue
from kuhr_pipeline.extract.generalise import GENERALISATIONS
from tests.conftest import REPO

PACKAGE = REPO / "kuhr_pipeline"
MAX_BODY_LINES = 60


def _modules() -> list[tuple[Path, ast.Module]]:
    return [(path, ast.parse(path.read_text(encoding="utf-8"))) for path in sorted(PACKAGE.rglob("*.py"))]


def _body_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines of a function's body, its docstring not counted."""
    body = node.body
    docstring = isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and len(body) > 1
    first = body[1] if docstring else body[0]
    return (node.end_lineno or first.lineno) - first.lineno + 1


def test_no_function_body_is_longer_than_sixty_lines() -> None:
    long = [
        f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({_body_lines(node)} lines)"
        for path, tree in _modules()
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and _body_lines(node) > MAX_BODY_LINES
    ]
    assert long == [], "split these along their steps:\n" + "\n".join(long)


def test_dagster_is_imported_only_by_the_wiring() -> None:
    """Domain code never imports dagster: `defs/` wires it, `definitions.py` is the code location."""
    allowed = {PACKAGE / "definitions.py"}
    importing = []
    for path, tree in _modules():
        if path in allowed or PACKAGE / "defs" in path.parents:
            continue
        for node in ast.walk(tree):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            if any(n == "dagster" or n.startswith(("dagster.", "dagster_")) for n in names):
                importing.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert importing == []


def test_every_generalisation_the_catalogue_offers_has_one_registry_entry() -> None:
    offered = {how for variable in load_catalogue().variables.values() for how in variable.generalisations}
    assert offered <= set(GENERALISATIONS), offered - set(GENERALISATIONS)
    assert all(entry.text for entry in GENERALISATIONS.values())  # the codebook's words
