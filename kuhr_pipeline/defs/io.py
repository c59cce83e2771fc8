"""Step outputs kept per run: `DAGSTER_HOME/storage/runs/<run_id>/<asset>/<partition>.pickle`.

Why not Dagster's default: it keeps one file per asset and partition, shared by every run of an
application, so two runs of one application at once could load each other's outputs (a spec's
claims in the other spec's delivery). Per run, a run only ever reads what it wrote itself, or
what its parent wrote when it re-executes from a failure (Dagster names that run). The outputs
are small (paths, counts, the spec); person-level data stays in sealed staging.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import dagster as dg

from kuhr_pipeline import settings
from kuhr_pipeline.errors import KuhrError
from kuhr_pipeline.sealed import private_folder, write_private


def _path(run_id: str, asset_key: dg.AssetKey, partition: str | None) -> Path:
    return (
        settings.dagster_home() / "storage" / "runs" / run_id / Path(*asset_key.path) / f"{partition or 'all'}.pickle"
    )


class RunScopedIOManager(dg.ConfigurableIOManager):
    """Pickles each asset's output under its run (see the module's docstring)."""

    def handle_output(self, context: dg.OutputContext, obj: object) -> None:
        partition = context.asset_partition_key if context.has_asset_partitions else None
        path = _path(context.run_id, context.asset_key, partition)
        private_folder(path.parent)
        write_private(path, pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))

    def load_input(self, context: dg.InputContext) -> object:
        upstream = context.upstream_output
        partition = context.asset_partition_key if context.has_asset_partitions else None
        try:
            run_id = upstream.run_id if upstream is not None else None
        except dg.DagsterInvariantViolationError:
            run_id = None
        path = _path(run_id, context.asset_key, partition) if run_id else None
        if path is None or not path.exists():
            raise KuhrError.single(
                str(path or context.asset_key.to_user_string()),
                "(step input)",
                "was not made by this run",
                "materialise the whole job for the application (its steps share one run's staging)",
            )
        with path.open("rb") as file:
            return pickle.load(file)
