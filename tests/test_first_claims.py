"""Each person's first entry claim: earliest time, ties broken by the smallest regning_id, which
pass 1 reads back only for tied claims."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa

from kuhr_pipeline.application import load_spec
from kuhr_pipeline.cohort import find_cohort
from kuhr_pipeline.cohort.first_claims import break_ties, reduce_entry
from kuhr_pipeline.source import open_source
from tests.helpers import person_id, staging_in, write_source, write_spec

A, B, C = person_id(1), person_id(2), person_id(3)


def claim(fnr: str, when: str, regning_id: str, kommune: str, codes: tuple[str, ...] = ("R74",)) -> dict:
    return {
        "pasient_fnr": fnr,
        "when": when,
        "regning_id": regning_id,
        "pasient_bostedskommune": kommune,
        "diagnosekoder": list(codes),
    }


ROWS = [
    claim(A, "2019-05-05T10:00:00", "R9", "4601"),  # tied with R1, which comes later in the file
    claim(B, "2019-05-05T10:00:00", "R2", "0301"),  # tied with R8: R2 is first
    claim(C, "2019-01-01T08:00:00", "R5", "0301", ("A04",)),  # not an entry claim
    claim(C, "2019-02-02T10:00:00", "R6", "4601"),  # the earliest: no tie
    claim(B, "2019-06-06T10:00:00", "R3", "4601"),
    claim(C, "2019-03-03T10:00:00", "R7", "0301"),
    claim(B, "2019-05-05T10:00:00", "R8", "4601"),
    claim(A, "2019-09-09T10:00:00", "R4", "4601"),
    claim(A, "2019-05-05T10:00:00", "R1", "0301"),
]


def test_ties_across_row_groups_are_broken_by_regning_id(tmp_path: Path, spec_dir: Path) -> None:
    """Two rows per row group: tied claims lie in different row groups (pieces of the scan)."""
    source = open_source(write_source(tmp_path / "source", ROWS, row_group_size=2))
    spec = load_spec(
        write_spec(
            spec_dir,
            {
                "cohort": {"entry": {"diagnoses": ["R74"]}, "bostedskommuner": ["03*"], "min_entry_claims": 3},
                "period": {"from": "2019-01-01", "to": "2019-12-31"},
            },
        )
    ).spec
    staging = staging_in(tmp_path / "stage")
    found = find_cohort(source, spec, staging)
    assert found.attrition.steps[1:3] == [("with an entry claim", 3), ("with at least 3 entry claims", 2)]
    assert sorted(found.numbers(staging).tolist()) == sorted([int(A), int(B)])  # C's first entry claim is in 4601


def _random_entries(rng: np.random.Generator, rows: int) -> pa.Table:
    return pa.table(
        {
            "person": pa.array(rng.integers(1, 40, rows), pa.int32()),
            "behandlingstidspunkt": pa.array(rng.integers(0, 5, rows) * 1000, pa.timestamp("ms")),
            "locator": pa.array(rng.permutation(rows).astype(np.int64)),
            "pasient_alder": pa.array(rng.integers(0, 90, rows), pa.int16()),
            "entry_claims": pa.array(np.ones(rows, dtype=np.int64)),
        }
    )


def test_reducing_again_keeps_counts_and_ties() -> None:
    """Pass 1 reduces batch by batch and then the reductions together: the result must be what
    one reduction of everything gives."""
    rng = np.random.default_rng(3)
    pieces = [_random_entries(rng, 300) for _ in range(4)]
    at_once = reduce_entry(pa.concat_tables(pieces))
    in_steps = reduce_entry(pa.concat_tables([reduce_entry(p) for p in pieces]))
    assert in_steps.to_pylist() == at_once.to_pylist()
    everything = pa.concat_tables(pieces)
    counts = np.bincount(everything.column("person").to_numpy())
    per_person = np.bincount(at_once.column("person").to_numpy(), weights=at_once.column("entry_claims").to_numpy())
    assert per_person.astype(int).tolist() == counts.tolist()


def test_break_ties_without_ties_reads_nothing(tmp_path: Path) -> None:
    """No tied claims: the source is not read again (a missing source would fail)."""
    firsts = reduce_entry(_random_entries(np.random.default_rng(5), 20).slice(0, 1))
    result = break_ties(firsts, None, (date(2019, 1, 1), date(2019, 12, 31)))  # type: ignore[arg-type]
    assert result.column_names == ["person", "behandlingstidspunkt", "pasient_alder", "entry_claims"]
