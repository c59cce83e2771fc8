"""Step outputs kept per run: `DAGSTER_HOME/storage/runs/<run_id>/<asset>/<partition>.pickle`.

Why not Dagster's default: it keeps one file per asset and partition, shared by every run of an
application, so two runs of one application at once could load each other's outputs (a spec's
claims in the other spec's delivery). Per run, a run only ever reads what it wrote itself, or
what its parent wrote when it re-executes from a failure (Dagster names that run). The outputs
are small (paths, counts, the spec); person-level data stays in sealed staging.

The cohort's inner steps (one per scan group, `cohort_steps.py`) are no assets: their outputs are
kept per step, `…/runs/<run_id>/steps/<step_key>/<output>.pickle`.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import dagster as dg

from kuhr_pipeline import settings
from kuhr_pipeline.errors import KuhrError
from kuhr_pipeline.sealed import private_folder, write_private


def _runs() -> Path:
    return settings.dagster_home() / "storage" / "runs"


def _path(run_id: str, asset_key: dg.AssetKey, partition: str | None) -> Path:
    return _runs() / run_id / Path(*asset_key.path) / f"{partition or 'all'}.pickle"


def _step_path(run_id: str, context: dg.OutputContext) -> Path:
    """A step output's file: a dynamic output's mapping key (its scan group) names it too."""
    name = f"{context.name}[{context.mapping_key}]" if context.mapping_key else context.name
    return _runs() / run_id / "steps" / context.step_key / f"{name}.pickle"


class RunScopedIOManager(dg.ConfigurableIOManager):
    """Pickles each asset's output under its run (see the module's docstring)."""

    def handle_output(self, context: dg.OutputContext, obj: object) -> None:
        if context.has_asset_key:
            partition = context.asset_partition_key if context.has_asset_partitions else None
            path = _path(context.run_id, context.asset_key, partition)
        else:
            path = _step_path(context.run_id, context)
        private_folder(path.parent)
        write_private(path, pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))

    def load_input(self, context: dg.InputContext) -> object:
        upstream = context.upstream_output
        try:
            run_id = upstream.run_id if upstream is not None else None
        except dg.DagsterInvariantViolationError:
            run_id = None
        path: Path | None = None
        if run_id and upstream is not None:
            if context.has_asset_key:
                partition = context.asset_partition_key if context.has_asset_partitions else None
                path = _path(run_id, context.asset_key, partition)
            else:
                path = _step_path(run_id, upstream)
        if path is None or not path.exists():
            raise KuhrError.single(
                str(path or (context.asset_key.to_user_string() if context.has_asset_key else context.name)),
                "(step input)",
                "was not made by this run",
                "materialise the whole job for the application (its steps share one run's staging)",
            )
        with path.open("rb") as file:
            return pickle.load(file)
