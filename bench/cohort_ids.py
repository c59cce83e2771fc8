"""The benchmark cohort's national ids, for the floor script only (synthetic data; not timed)."""

from __future__ import annotations

import sys
from pathlib import Path

from kuhr_pipeline.application import load_spec
from kuhr_pipeline.cohort.select import find_cohort
from kuhr_pipeline.source import open_source

BENCH = Path(__file__).resolve().parent

if __name__ == "__main__":
    spec = load_spec(BENCH / "benchmark-application.yaml").spec
    row_labels = Path(sys.argv[2]).with_suffix(".row-labels")
    found = find_cohort(open_source(sys.argv[1]), spec, row_labels)
    row_labels.unlink()
    Path(sys.argv[2]).write_text("\n".join(f"{n:011d}" for n in found.numbers.tolist()) + "\n")
