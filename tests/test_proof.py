"""The hypercube proof on its own (large tables have no other): it refuses every way a hypercube
can fail to protect, on hand-built one-dimensional tables (region a, b, c, d and the total)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from kuhr_pipeline.disclosure.proof import prove

REGIONS = ["a", "b", "c", "d", None]


def tables(persons: list[int], egenandel: list[float], hidden: set[str]) -> tuple[pa.Table, pa.Table]:
    """The cube's true values (claims = persons) and the delivered table hiding `hidden`."""
    cube = pa.table(
        {
            "region": REGIONS,
            "persons": pa.array(persons, pa.int64()),
            "claims": pa.array(persons, pa.int64()),
            "sum_egenandel": pa.array(egenandel, pa.float64()),
        }
    )
    flags = [r in hidden for r in REGIONS]
    delivered = pa.table(
        {
            "region": REGIONS,
            **{
                m: pa.array([None if f else v for f, v in zip(flags, cube.column(m).to_pylist(), strict=True)])
                for m in ("persons", "claims", "sum_egenandel")
            },
            "suppressed": flags,
        }
    )
    return cube, delivered


def test_a_pair_of_suppressed_cells_is_proven_with_its_width() -> None:
    cube, delivered = tables([12, 3, 10, 4, 29], [100.0, 30.0, 80.0, 40.0, 250.0], {"b", "d"})
    proof = prove(delivered, cube, ["region"], [np.array([1, 3])])
    assert proof.holds
    assert proof.smallest_width == {"claims": 7.0, "sum_egenandel": 70.0}  # δ ∈ [−3, 4]; [−30, 40]


def test_a_hypercube_with_a_shown_corner_proves_nothing() -> None:
    cube, delivered = tables([12, 3, 10, 4, 29], [100.0, 30.0, 80.0, 40.0, 250.0], {"b"})
    proof = prove(delivered, cube, ["region"], [np.array([1, 3])])
    assert proof.unprotected == [("b",)]


def test_corners_that_are_no_hypercube_prove_nothing() -> None:
    cube, delivered = tables([12, 3, 10, 4, 29], [100.0, 30.0, 80.0, 40.0, 250.0], {"a", "b", "d"})
    proof = prove(delivered, cube, ["region"], [np.array([0, 1, 3])])  # three values in one dimension
    assert proof.unprotected == [("a",), ("b",), ("d",)]


def test_zero_sums_on_both_signs_pin_the_pair() -> None:
    """b and d both paid no egenandel: +δ on b, −δ on d; neither may go below 0, so δ = 0."""
    cube, delivered = tables([12, 3, 10, 4, 29], [100.0, 0.0, 80.0, 0.0, 180.0], {"b", "d"})
    proof = prove(delivered, cube, ["region"], [np.array([1, 3])])
    assert proof.unprotected == [("b",), ("d",)]


def test_two_single_persons_in_one_hypercube_are_exposed_to_each_other() -> None:
    cube, delivered = tables([12, 1, 10, 1, 24], [100.0, 30.0, 80.0, 40.0, 250.0], {"b", "d"})
    proof = prove(delivered, cube, ["region"], [np.array([1, 3])])
    assert not proof.unprotected and proof.exposed_to_an_insider == [("b",), ("d",)]
    cube, delivered = tables([12, 1, 10, 1, 24], [100.0, 30.0, 80.0, 40.0, 250.0], {"b", "c", "d"})
    proof = prove(delivered, cube, ["region"], [np.array([1, 2]), np.array([3, 2])])  # each with c instead
    assert proof.holds
