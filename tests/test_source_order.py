"""The order of the source never changes what is selected: the same synthetic register written in
time order (as the register exports) and in person order gives the same cohort, attrition and claims."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from kuhr_pipeline.application import load_spec
from kuhr_pipeline.cohort import select_cohort
from kuhr_pipeline.source import open_source
from kuhr_pipeline.synth import generate_source
from tests.helpers import read_staged, staging_in, write_spec

MASTER = bytes(range(32, 64))


def _sorted(table: pa.Table) -> pa.Table:
    plain = [name for name in table.column_names if not pa.types.is_list(table.schema.field(name).type)]
    return table.sort_by([(name, "ascending") for name in plain])


@pytest.mark.parametrize(
    "cohort",
    [
        {"entry": {"diagnoses": ["R74", "A04"]}},
        {
            "entry": {"diagnoses": {"ICPC-2": ["R7*", "T90"]}, "praksistyper": ["FALE", "LEVA"]},
            "min_entry_claims": 2,
            "washout_days": 90,
            "age": {"min": 5, "max": 70},
            "exclude": {"diagnoses": {"ICPC-2": ["P76"]}, "window": {"before": 60, "after": 30}},
        },
    ],
    ids=["plain", "every rule"],
)
def test_time_and_person_order_select_the_same(tmp_path: Path, spec_dir: Path, cohort: dict) -> None:
    spec = load_spec(
        write_spec(spec_dir, {"period": {"from": "2020-01-01", "to": "2021-12-31"}, "cohort": cohort})
    ).spec
    results = []
    for order in ("time", "person"):
        source = generate_source(tmp_path / order, persons=1500, from_year=2019, to_year=2022, seed=6, order=order)
        claims = select_cohort(open_source(source.path), spec, MASTER, staging_in(tmp_path / f"stage-{order}"))
        results.append((claims.attrition.steps, claims.persons, _sorted(read_staged(claims.path))))
    (steps_t, persons_t, claims_t), (steps_p, persons_p, claims_p) = results
    assert persons_t > 20 and steps_t == steps_p and persons_t == persons_p
    assert claims_t.equals(claims_p)
