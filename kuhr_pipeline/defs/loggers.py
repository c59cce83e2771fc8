"""The `deliver` command's progress: the pipeline's own log lines as they are (each step says what
it does, with counts) — a pass's progress as a bar on a terminal — without Dagster's event lines,
which `deliver -v` shows through Dagster's console logger. The run's event log in the instance is
the same either way."""

from __future__ import annotations

import logging
import sys

import dagster as dg
from tqdm import tqdm

from kuhr_pipeline.report import progress_of

# Dagster's own notices about steps it will not run (after a failed or skipped step): its
# orchestration, not the pipeline's progress; the failure itself is said once at the end, and
# `deliver -v` shows these too.
DAGSTER_PLAN_NOTICES = ("Skipping step ", "Dependencies for step ")


class _PipelineLines(logging.Handler):
    """Prints the messages the pipeline's steps log; drops Dagster's own events. On a terminal a
    pass's progress lines move one bar per pass instead."""

    def __init__(self, bars: bool) -> None:
        super().__init__()
        self.draw_bars = bars  # decided by the command (a step's stderr may be captured, not a terminal)
        self.bars: dict[str, tqdm] = {}

    def emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, "dagster_meta", None)
        if meta is None or meta.get("dagster_event") is not None:
            return
        text = str(meta.get("orig_message", ""))
        if text.startswith(DAGSTER_PLAN_NOTICES):
            return
        progress = progress_of(text) if self.draw_bars else None
        if progress is not None:
            self._advance(*progress)
            return
        prefix = "warning: " if record.levelno >= logging.WARNING else ""
        tqdm.write(prefix + text, file=sys.stderr)

    def _advance(self, stage: str, seen: int, total: int) -> None:
        bar = self.bars.get(stage)
        if bar is None:
            bar = self.bars[stage] = tqdm(total=total, desc=stage, unit=" claims", unit_scale=True, file=sys.stderr)
        bar.update(seen - bar.n)
        if seen >= total:
            bar.close()


@dg.logger(
    config_schema={
        "log_level": dg.Field(str, default_value="INFO", is_required=False),
        "bars": dg.Field(bool, default_value=False, is_required=False, description="progress as bars"),
    },
    description="The pipeline's own log lines, one per line on stderr (no Dagster event lines).",
)
def pipeline_lines(init_context: dg.InitLoggerContext) -> logging.Logger:
    logger = logging.Logger("kuhr_pipeline.steps", level=init_context.logger_config["log_level"])
    logger.addHandler(_PipelineLines(init_context.logger_config["bars"]))
    return logger
