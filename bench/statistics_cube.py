"""The statistics bench (#19): suppression and its proof on a synthetic national cube.

year × kommune × sex × 10-year age group (9 × 356 × 2 × 10 inner cells, with every margin:
106 000 cells), persons per inner cell drawn from kommune sizes as skewed as Norway's (Oslo
against a few hundred inhabitants), so that small kommuner give many primary cells. Times
`suppress` (primary, dominance, hypercubes) and `prove` (the check before publishing), and the
peak RSS of the process. Usage: .venv/bin/python bench/statistics_cube.py [--kommuner N] [--seed S]
"""

from __future__ import annotations

import argparse
import itertools
import resource
import time

import numpy as np
import pyarrow as pa

from kuhr_pipeline.disclosure.cube import MEASURES, TOPS, Cube
from kuhr_pipeline.disclosure.proof import prove
from kuhr_pipeline.disclosure.suppression import suppress

DIMENSIONS = ["ar", "kommune", "kjonn", "aldersgruppe"]


def synthetic_cube(kommuner: int, seed: int) -> Cube:
    rng = np.random.default_rng(seed)
    levels = [
        [str(y) for y in range(2016, 2025)],
        [f"{k:04d}" for k in range(kommuner)],
        ["K", "M"],
        [f"{a:02d}-{a + 9:02d}" for a in range(0, 100, 10)],
    ]
    size = rng.lognormal(mean=1.5, sigma=1.6, size=kommuner)  # persons per inner cell, by kommune
    shape = tuple(len(level) for level in levels)
    persons = rng.poisson(size[None, :, None, None] * np.ones(shape))
    claims = persons * rng.integers(1, 6, size=shape)
    egenandel = np.where(np.arange(10)[None, None, None, :] < 2, 0.0, claims * 160.0)  # children pay nothing
    refusjon = claims * 250.0
    dense = {"persons": persons, "claims": claims, "sum_egenandel": egenandel, "sum_refusjon": refusjon}
    columns: dict[str, list] = {name: [] for name in [*DIMENSIONS, *MEASURES, *TOPS]}
    for margin in itertools.product([False, True], repeat=len(DIMENSIONS)):
        axes = tuple(d for d, summed in enumerate(margin) if summed)
        summed = {m: v.sum(axis=axes) if axes else v for m, v in dense.items()}
        kept = [None if margin[d] else levels[d] for d in range(len(DIMENSIONS))]
        for index in np.ndindex(*summed["persons"].shape):
            if summed["claims"][index] == 0:
                continue
            position = iter(index)
            for d, name in enumerate(DIMENSIONS):
                columns[name].append(None if kept[d] is None else kept[d][next(position)])
            for m in MEASURES:
                columns[m].append(summed[m][index].item())
            per_person = summed["sum_refusjon"][index] / summed["persons"][index]
            columns["top_egenandel"].append(summed["sum_egenandel"][index] / summed["persons"][index])
            columns["top_refusjon"].append(per_person)
    table = pa.table({name: pa.array(values) for name, values in columns.items()})
    for m, kind in {**MEASURES, **TOPS}.items():
        table = table.set_column(table.schema.get_field_index(m), m, table.column(m).cast(kind))
    return Cube(DIMENSIONS, table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kommuner", type=int, default=356)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--min-cell", type=int, default=5)
    args = parser.parse_args()
    cube = synthetic_cube(args.kommuner, args.seed)
    print(f"cube: {cube.table.num_rows:,} cells")
    measures = ["persons", "claims", "sum_egenandel", "sum_refusjon"]
    start = time.perf_counter()
    result = suppress(cube, measures, args.min_cell)
    suppressed = time.perf_counter() - start
    print(f"suppress: {suppressed:.1f} s, {result.primary:,} primary, {result.secondary:,} secondary")
    start = time.perf_counter()
    proof = prove(result.table, cube.table, list(cube.dimensions), result.certificates)
    print(f"prove: {time.perf_counter() - start:.1f} s, {proof}")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
