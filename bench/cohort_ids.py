"""The benchmark cohort's national ids, for the floor script only (synthetic data; not timed)."""

from __future__ import annotations

import secrets
import sys
import tempfile
from pathlib import Path

from kuhr_pipeline.application import load_spec
from kuhr_pipeline.cohort import find_cohort
from kuhr_pipeline.source import open_source
from kuhr_pipeline.staging import Staging

BENCH = Path(__file__).resolve().parent

if __name__ == "__main__":
    spec = load_spec(BENCH / "benchmark-application.yaml").spec
    with tempfile.TemporaryDirectory(prefix="kuhr-bench-") as folder:
        staging = Staging.for_run(Path(folder), secrets.token_bytes(32), "bench")
        numbers = find_cohort(open_source(sys.argv[1]), spec, staging).numbers(staging)
    Path(sys.argv[2]).write_text("\n".join(f"{n:011d}" for n in numbers.tolist()) + "\n")
