"""Telemetry off in every process that loads this project, whatever the instance file says.

Dagster has no environment variable for it, and an instance file without a `telemetry` section
means "on": a CLI delivery then wrote DAGSTER_HOME/.telemetry/. The instance's setting is
answered here (once, at import of `kuhr_pipeline.defs`), so neither `deliver` nor the code
location ever records or sends telemetry. The webserver and the daemon read the instance file
themselves: both shipped files switch it off.
"""

from __future__ import annotations

import dagster as dg


def force_telemetry_off() -> None:
    dg.DagsterInstance.telemetry_enabled = property(lambda _instance: False)  # type: ignore[method-assign,assignment]
