"""Small-cell suppression: primary, secondary along every margin, exact shown cells."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow as pa
import pytest

from kuhr_pipeline.disclosure.cube import build_cube
from kuhr_pipeline.disclosure.suppression import EXACT_CELLS, suppress
from tests.helpers import staging_in

MIN_CELL = 5


def claims_file(folder: Path, leaves: dict[tuple[str, ...], int], dims: list[str], exempt_every: int = 0) -> Path:
    """One claim per person; `leaves` maps a cell's values to its number of persons. With
    `exempt_every` = n, every n-th person pays no egenandel (so some cells sum to 0)."""
    rows = []
    person = 0
    for values, persons in leaves.items():
        for _ in range(persons):
            person += 1
            rows.append(
                {
                    "pasient_pseudonym": f"{person:032x}",
                    "egenandel": 0.0 if exempt_every and person % exempt_every == 0 else 100.0,
                    "refusjon": 10.0,
                    **dict(zip(dims, values, strict=True)),
                }
            )
    schema = pa.schema(
        [
            ("pasient_pseudonym", pa.string()),
            ("egenandel", pa.float64()),
            ("refusjon", pa.float64()),
            *[(d, pa.string()) for d in dims],
        ]
    )
    folder.mkdir(parents=True, exist_ok=True)
    return _stage(folder / "claims.arrow", pa.Table.from_pylist(rows, schema=schema))


def _stage(path: Path, claims: pa.Table) -> Path:
    """Claims staged as the cohort step stages them."""
    writer = staging_in(path.parent).arrow_writer(staging_in(path.parent).path(path.name), claims.schema)
    writer.write(claims)
    writer.close()
    return path


def run(
    folder: Path, leaves: dict[tuple[str, ...], int], dims: list[str], exact_cells: int = EXACT_CELLS
) -> tuple[pa.Table, pa.Table]:
    cube = build_cube(staging_in(folder), claims_file(folder, leaves, dims), [(d, "exact") for d in dims])
    result = suppress(cube, ["persons", "claims", "sum_egenandel", "sum_refusjon"], MIN_CELL, exact_cells=exact_cells)
    return cube.table, result.table


def cell(table: pa.Table, dims: list[str], key: tuple) -> dict:
    for row in table.to_pylist():
        if tuple(row[d] for d in dims) == key:
            return row
    raise KeyError(key)


def assert_safe(table: pa.Table, dims: list[str]) -> None:
    """Judged by the independent oracle: no value pinned by the whole table (linear programming)."""
    from tests.disclosure_oracle import assert_no_value_pinned

    assert_no_value_pinned(table, dims)
    for row in table.to_pylist():
        if not row["suppressed"]:
            assert row["persons"] == 0 or row["persons"] >= MIN_CELL
        else:
            assert row["persons"] is None and row["claims"] is None and row["sum_egenandel"] is None


def test_hidden_from_its_row_margin(tmp_path: Path) -> None:
    dims = ["a", "b"]
    _, out = run(tmp_path, {("x", "p"): 2, ("x", "q"): 50, ("y", "p"): 40, ("y", "q"): 60}, dims)
    assert cell(out, dims, ("x", "p"))["suppressed"]
    row = [cell(out, dims, k) for k in (("x", None), ("x", "p"), ("x", "q"))]
    assert sum(r["suppressed"] for r in row) >= 2  # the margin x alone cannot reveal (x, p)
    assert_safe(out, dims)


def test_hidden_from_its_column_margin(tmp_path: Path) -> None:
    dims = ["a", "b"]
    _, out = run(tmp_path, {("x", "p"): 2, ("x", "q"): 50, ("y", "p"): 40, ("y", "q"): 60}, dims)
    column = [cell(out, dims, k) for k in ((None, "p"), ("x", "p"), ("y", "p"))]
    assert sum(r["suppressed"] for r in column) >= 2
    assert_safe(out, dims)


def test_hidden_from_the_grand_total_through_a_margin(tmp_path: Path) -> None:
    dims = ["a"]
    _, out = run(tmp_path, {("x",): 3, ("y",): 50}, dims)
    total, x, y = cell(out, dims, (None,)), cell(out, dims, ("x",)), cell(out, dims, ("y",))
    assert x["suppressed"]
    assert y["suppressed"] or total["suppressed"]  # else total − y = x
    assert_safe(out, dims)


def test_hidden_margin_is_not_the_sum_of_its_shown_children(tmp_path: Path) -> None:
    dims = ["a", "b"]
    # every cell large, but one whole row small: the margin (x, ·) is primary
    _, out = run(tmp_path, {("x", "p"): 2, ("x", "q"): 1, ("y", "p"): 40, ("y", "q"): 60}, dims)
    assert cell(out, dims, ("x", None))["suppressed"]
    assert_safe(out, dims)


def test_shown_cells_are_exact(tmp_path: Path) -> None:
    dims = ["a", "b"]
    leaves = {("x", "p"): 2, ("x", "q"): 50, ("y", "p"): 40, ("y", "q"): 60, ("z", "p"): 7, ("z", "q"): 9}
    raw, out = run(tmp_path, leaves, dims)
    for before, after in zip(raw.to_pylist(), out.to_pylist(), strict=True):
        if not after["suppressed"]:
            for measure in ("persons", "claims", "sum_egenandel", "sum_refusjon"):
                assert after[measure] == before[measure]
    assert cell(out, dims, (None, None))["persons"] == sum(leaves.values())
    assert cell(out, dims, ("y", "q"))["claims"] == 60


def test_cube_has_every_cell_and_margin(tmp_path: Path) -> None:
    dims = ["a", "b"]
    raw, _ = run(tmp_path, {("x", "p"): 6, ("y", "q"): 7}, dims)
    keys = {tuple(r[d] for d in dims) for r in raw.to_pylist()}
    assert keys == {("x", "p"), ("y", "q"), ("x", None), ("y", None), (None, "p"), (None, "q"), (None, None)}


def test_cube_in_person_buckets_equals_the_cube_in_one_piece(tmp_path: Path) -> None:
    """Large cohorts are aggregated a bucket of persons at a time: the added cubes must be exact,
    distinct persons in every margin included (persons here have claims in several cells)."""
    rows = []
    for person in range(60):
        pseudonym = hashlib.sha256(str(person).encode()).hexdigest()[:32]
        for claim in range(1 + person % 4):
            rows.append(
                {
                    "pasient_pseudonym": pseudonym,
                    "egenandel": float(claim * 10 + person),
                    "refusjon": 1.5,
                    "sex": ["1", "2", None][(person + claim) % 3],
                    "region": ["03", "46"][claim % 2],
                }
            )
    path = _stage(tmp_path / "claims.arrow", pa.Table.from_pylist(rows))
    dims = [("sex", "exact"), ("region", "exact")]

    def cells(table: pa.Table) -> list[tuple]:
        return sorted((tuple(r.values()) for r in table.to_pylist()), key=repr)

    whole = build_cube(staging_in(tmp_path), path, dims)
    bucketed = build_cube(staging_in(tmp_path), path, dims, rows_per_bucket=20)
    assert cells(bucketed.table) == cells(whole.table)
    grand_total = [r for r in whole.table.to_pylist() if r["sex"] is None and r["region"] is None]
    assert grand_total[0]["persons"] == 60


def test_a_cell_one_person_dominates_is_primary_whatever_its_size(tmp_path: Path) -> None:
    """Dominance (1, 85 %): in a cell of 6 persons one has 95 % of sum_refusjon (two claims of his
    in the cell: his share counts once per person, not per claim). Delivering sum_refusjon
    suppresses the cell (and enough others that it cannot be recovered); without sums it shows."""
    rows = [{"pasient_pseudonym": f"{p:032x}", "egenandel": 100.0, "refusjon": 5.0, "region": "a"} for p in range(2, 7)]
    rows += [{"pasient_pseudonym": f"{1:032x}", "egenandel": 100.0, "refusjon": 237.5, "region": "a"}] * 2
    rows += [
        {"pasient_pseudonym": f"{p:032x}", "egenandel": 100.0, "refusjon": 10.0, "region": "b"} for p in range(10, 20)
    ]
    rows += [
        {"pasient_pseudonym": f"{p:032x}", "egenandel": 100.0, "refusjon": 10.0, "region": "c"} for p in range(20, 30)
    ]
    path = _stage(tmp_path / "claims.arrow", pa.Table.from_pylist(rows))
    cube = build_cube(staging_in(tmp_path), path, [("region", "exact")])
    row_a = next(r for r in cube.table.to_pylist() if r["region"] == "a")
    assert row_a["persons"] == 6 and row_a["sum_refusjon"] == 500.0 and row_a["top_refusjon"] == 475.0
    with_sums = suppress(cube, ["persons", "sum_refusjon"], MIN_CELL)
    shown = {r["region"]: r for r in with_sums.table.to_pylist()}
    assert shown["a"]["suppressed"] and shown["a"]["sum_refusjon"] is None
    assert with_sums.primary == 1 and with_sums.secondary >= 1  # a alone would be the margin minus b and c
    without_sums = suppress(cube, ["persons", "claims"], MIN_CELL)
    assert not any(without_sums.table.column("suppressed").to_pylist())


@pytest.mark.parametrize("exact_cells", [EXACT_CELLS, 0], ids=["the lesser of both", "hypercubes"])
def test_two_single_persons_in_one_margin_cannot_reveal_each_other(tmp_path: Path, exact_cells: int) -> None:
    """12 / 1 / 10 / 1 persons in a margin: the two 1-person cells are primary; each of those two
    persons knows their own cell, so a third cell is hidden too, and neither can pin the other."""
    from tests.disclosure_oracle import assert_no_value_pinned_for_insiders

    cube_table, table = run(tmp_path, {("a",): 12, ("b",): 1, ("c",): 10, ("d",): 1}, ["region"], exact_cells)
    hidden = {r["region"] for r in table.to_pylist() if r["suppressed"]}
    assert {"b", "d"} < hidden and len(hidden) == 3 and "c" in hidden  # the smallest other cell
    for measure in ("claims", "sum_egenandel", "sum_refusjon"):  # what the others are, to one who knows his own
        assert_no_value_pinned_for_insiders(cube_table, table, ["region"], measure)


def test_a_cell_hidden_in_the_last_release_stays_hidden(tmp_path: Path) -> None:
    """A recurring release treats the cells the last one hid as primary: a cell that would now
    count enough persons to show stays hidden, so the two releases cannot be differenced."""
    leaves = {("a",): 3, ("b",): 9, ("c",): 9}
    first = suppress(
        build_cube(staging_in(tmp_path / "1"), claims_file(tmp_path / "1", leaves, ["region"]), [("region", "exact")]),
        ["persons", "claims"],
        MIN_CELL,
    )
    hidden_first = {r["region"] for r in first.table.to_pylist() if r["suppressed"]}
    assert "a" in hidden_first
    grown = {("a",): 6, ("b",): 9, ("c",): 9, ("d",): 8}  # a now has 6 persons; d is new
    cube = build_cube(staging_in(tmp_path / "2"), claims_file(tmp_path / "2", grown, ["region"]), [("region", "exact")])
    afresh = suppress(cube, ["persons", "claims"], MIN_CELL)
    assert not any(afresh.table.column("suppressed").to_pylist())  # chosen afresh, a would show
    kept = suppress(cube, ["persons", "claims"], MIN_CELL, previous={(r,) for r in hidden_first})
    hidden_now = {r["region"] for r in kept.table.to_pylist() if r["suppressed"]}
    assert hidden_first <= hidden_now and "a" in hidden_now
