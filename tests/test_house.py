"""The rules of the house (docs/design.md): what keeps the package easy to change."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
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


def test_a_built_wheel_carries_the_suites_and_the_catalogue(tmp_path: Path) -> None:
    """`pip wheel .` then installed into an empty folder: the suites and the catalogue load from
    the installed package alone (no repository checkout beside it)."""
    source = tmp_path / "source"  # built from a copy: setuptools writes build/ beside the sources
    shutil.copytree(PACKAGE, source / "kuhr_pipeline", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "-q", "-w", str(tmp_path / "wheel")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = (tmp_path / "wheel").glob("kuhr_pipeline-*.whl")
    target = tmp_path / "installed"
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert installed.returncode == 0, installed.stderr[-2000:]
    probe = (
        "import kuhr_pipeline, sys\n"
        "from kuhr_pipeline.quality.suites import load_suite_file\n"
        "from kuhr_pipeline.catalogue import load_catalogue\n"
        "print(kuhr_pipeline.__file__)\n"
        "suites = [load_suite_file(name) for name in ('claims', 'source', 'statistics')]\n"
        "print(*map(len, suites), len(load_catalogue().variables))\n"
    )
    site = [p for p in sys.path if p.endswith("site-packages")]
    env = {"PYTHONPATH": os.pathsep.join([str(target), *site]), "PATH": os.environ["PATH"]}
    # -S: no site (so no editable install of the checkout); the dependencies come from PYTHONPATH
    loaded = subprocess.run(
        [sys.executable, "-S", "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    where, counts = loaded.stdout.splitlines()
    assert where.startswith(str(target))
    assert all(int(n) > 0 for n in counts.split()), counts
