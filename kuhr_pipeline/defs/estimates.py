"""Job `estimate_application`: the feasibility estimate for a spec not approved yet (a draft), from
the UI. It never delivers: it logs the masked attrition (and for statistics the table's cells and
those primary suppression would hide) and records the estimate in the audit log."""

from pathlib import Path

import dagster as dg

from kuhr_pipeline.cohort.attrition import ATTRITION_COLUMNS
from kuhr_pipeline.defs.failures import plain_failures
from kuhr_pipeline.defs.resources import KuhrPaths, PseudonymKey, SigningKey
from kuhr_pipeline.defs.tables import text_table
from kuhr_pipeline.estimate import estimate
from kuhr_pipeline.source import open_source


class EstimateConfig(dg.Config):
    """The spec file to estimate (its path)."""

    spec_path: str


@dg.op(
    out=dg.Out(dg.Nothing),
    description="Pass 1 (and for statistics the cube) of a spec, approved or draft: counts only, no delivery.",
)
@plain_failures
def estimate_cohort(
    context: dg.OpExecutionContext,
    config: EstimateConfig,
    paths: KuhrPaths,
    signing_key: SigningKey,
    pseudonym_key: PseudonymKey,
) -> dg.Output[None]:
    result = estimate(
        Path(config.spec_path),
        open_source(paths.source_dir()),
        paths.deliveries_dir(),
        signing_key.private_key(),
        pseudonym_key.master_key(),
    )
    for line in result.lines():
        context.log.info(line)
    return dg.Output(
        None,
        metadata={
            "application_id": result.application_id,
            "draft": result.draft,
            "attrition": text_table(["step", "persons", "bills"], result.attrition, ATTRITION_COLUMNS),
            **({"cells": result.cells, "primary_suppressed": result.primary} if result.cells is not None else {}),
        },
    )


@dg.job(
    executor_def=dg.in_process_executor,
    description="Estimate a spec (a draft too) before approval; never delivers.",
)
def estimate_application() -> None:
    estimate_cohort()
