"""A feasibility estimate for an applicant: how many persons a cohort would hold, before approval.

Person-level specs: pass 1 only — no pseudonyms, no claims; pass 1's row labels (run-local
numbers, no ids) go to a temporary file removed at once. Statistics specs: both passes and the
cube, to count its cells and those primary suppression would hide, in a temporary folder sealed
with a key made for the estimate alone (never the master key) and removed at once. What is shown
is the attrition with every person count perturbed by the cell key method
(disclosure/cell_key.py), then masked and rounded to 5, so that answers to near questions do not
add up to a small group; and counts of cells. The audit log records the estimate, since it reads
the register, and limits how many an application gets a day.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kuhr_pipeline import clock
from kuhr_pipeline.application import LoadedSpec, load_spec
from kuhr_pipeline.application.model import ApplicationSpec
from kuhr_pipeline.cohort import find_cohort, select_cohort
from kuhr_pipeline.cohort.attrition import Attrition
from kuhr_pipeline.cohort.select import IN_POPULATION_FILE, POPULATION_ROWS_NOT_USED
from kuhr_pipeline.cohort.windows import Progress
from kuhr_pipeline.delivery.audit import AUDIT_LOG, ESTIMATE, audit_records, record_estimate
from kuhr_pipeline.disclosure.cell_key import CellKeys, RecordKeys, perturbed
from kuhr_pipeline.disclosure.cube import build_cube
from kuhr_pipeline.disclosure.masking import mask_count
from kuhr_pipeline.disclosure.suppression import primary_cells
from kuhr_pipeline.errors import KuhrError
from kuhr_pipeline.identity.population import Population, load_population
from kuhr_pipeline.source.scan import Source
from kuhr_pipeline.staging import Staging

COUNTS_ARE = "counts perturbed by the cell key method, masked below the threshold and rounded to 5"


@dataclass(frozen=True)
class Estimate:
    application_id: str
    draft: bool
    attrition: list[dict[str, str]]
    cells: int | None = None  # statistics: cells of the table, margins included
    primary: int | None = None  # statistics: cells primary suppression would hide

    def as_json(self) -> dict[str, object]:
        return {**{k: v for k, v in asdict(self).items() if v is not None}, "counts": COUNTS_ARE}

    def lines(self) -> list[str]:
        """The estimate in words, a line per attrition step (and the table's size)."""
        out = [f"{self.application_id}: estimated cohort{' of a draft' if self.draft else ''} ({COUNTS_ARE})"]
        for row in self.attrition:
            out.append(f"  {row['step']}: " + ", ".join(f"{k} {v}" for k, v in row.items() if k != "step"))
        if self.cells is not None:
            out.append(f"  statistics: {self.cells:,} cells, {self.primary:,} of them hidden by primary suppression")
        return out


def estimate(
    spec_path: Path,
    source: Source,
    deliveries_root: Path,
    signing_key: Ed25519PrivateKey,
    master_key: bytes,
    on_progress: Progress | None = None,
) -> Estimate:
    """Check the spec (a draft passes) and the day's limit, estimate, and record the estimate in
    the audit log."""
    loaded: LoadedSpec = load_spec(spec_path, draft=True)
    spec = loaded.spec
    require_estimates_left(deliveries_root, loaded.application_id, str(spec_path))
    cell_keys = _CellKeysOfSteps(RecordKeys(master_key))
    population = load_population(loaded)
    if spec.statistics is None:
        attrition = _pass_one(source, spec, on_progress, cell_keys, population)
        result = Estimate(loaded.application_id, spec.approval.status == "draft", shown(attrition, cell_keys.keys))
    else:
        result = _statistics(source, spec, on_progress, cell_keys, population)
    record_estimate(deliveries_root, signing_key, loaded.application_id, loaded.sha256, clock.now().isoformat())
    return result


ESTIMATES_PER_DAY_VARIABLE = "KUHR_ESTIMATES_PER_DAY"
ESTIMATES_PER_DAY = 10


def estimates_per_day() -> int:
    value = os.environ.get(ESTIMATES_PER_DAY_VARIABLE, str(ESTIMATES_PER_DAY)).strip()
    if not value.isdigit():
        raise KuhrError.single(
            f"${ESTIMATES_PER_DAY_VARIABLE}", ESTIMATES_PER_DAY_VARIABLE, f"is {value!r}, not a number", "set it to 10"
        )
    return int(value)


def require_estimates_left(deliveries_root: Path, application_id: str, where: str) -> None:
    """Estimates answer open questions, so many of them add up to small groups: the deployment
    allows KUHR_ESTIMATES_PER_DAY (default 10) per application id and UTC day, counted in the
    audit log; past it, refused (exit 2) before the register is read."""
    limit = estimates_per_day()
    today = clock.today().isoformat()
    done = sum(
        1
        for record in audit_records(deliveries_root / AUDIT_LOG)
        if record.get("event") == ESTIMATE
        and record.get("application_id") == application_id
        and str(record.get("time", "")).startswith(today)
    )
    if done >= limit:
        raise KuhrError.single(
            where,
            "application_id",
            f"{application_id} had its {limit} estimates today ({ESTIMATES_PER_DAY_VARIABLE}); "
            "many answers to near questions add up to small groups",
            "estimate again tomorrow, or apply for the delivery",
        )


class _CellKeysOfSteps:
    """Handed each attrition step's persons as it is counted: keeps the step's cell key only."""

    def __init__(self, record_keys: RecordKeys) -> None:
        self._record_keys = record_keys
        self._cells: CellKeys | None = None
        self.keys: dict[str, float] = {}

    def __call__(self, step: str, persons: np.ndarray) -> None:
        if self._cells is None:  # the first step: every person in the period, hashed once
            self._cells = CellKeys(self._record_keys, persons)
        self.keys[step] = self._cells.of(persons)


def _pass_one(
    source: Source,
    spec: ApplicationSpec,
    on_progress: Progress | None,
    cell_keys: _CellKeysOfSteps,
    population: Population | None,
) -> Attrition:
    with tempfile.TemporaryDirectory(prefix="kuhr-estimate-") as folder:
        staging = Staging.for_run(Path(folder), secrets.token_bytes(32), "estimate")
        return find_cohort(source, spec, staging, on_progress, cell_keys, population).attrition


def _statistics(
    source: Source,
    spec: ApplicationSpec,
    on_progress: Progress | None,
    cell_keys: _CellKeysOfSteps,
    population: Population | None,
) -> Estimate:
    assert spec.statistics is not None
    key = secrets.token_bytes(32)  # the estimate's own: its pseudonyms match nothing, anywhere
    with tempfile.TemporaryDirectory(prefix="kuhr-estimate-") as folder:
        staging = Staging.for_run(Path(folder), key, "estimate")
        claims = select_cohort(source, spec, key, staging, on_progress, on_members=cell_keys, population=population)
        cube = build_cube(staging, claims.path, spec.plan.pairs, map_year=spec.plan.map_year)
        primary = primary_cells(cube, list(spec.statistics.measures), spec.statistics.min_cell)
    return Estimate(
        spec.application_id,
        spec.approval.status == "draft",
        shown(claims.attrition, cell_keys.keys),
        cells=cube.table.num_rows,
        primary=int(primary.sum()),
    )


ESTIMATE_ROUNDING = 5
# Counts of the project's own population file (its rows, not the register's persons): no cell key
POPULATION_FILE_STEPS = frozenset({IN_POPULATION_FILE, POPULATION_ROWS_NOT_USED})


def shown(attrition: Attrition, cell_keys: dict[str, float]) -> list[dict[str, str]]:
    """The attrition as an estimate shows it: each step's persons perturbed by its cell key, then
    masked and rounded to 5; bills dropped for their ids (no persons to key) masked and rounded."""
    rows = [
        {
            "step": step,
            "persons": mask_count(
                n if step in POPULATION_FILE_STEPS else perturbed(n, cell_keys[step]),
                attrition.threshold,
                ESTIMATE_ROUNDING,
            ),
        }
        for step, n in attrition.steps
    ]
    rows += [
        {"step": step, "bills": mask_count(count, attrition.threshold, ESTIMATE_ROUNDING)}
        for step, count in attrition.dropped_rows()
    ]
    return rows
