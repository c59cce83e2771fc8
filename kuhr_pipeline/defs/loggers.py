"""The `deliver` command's progress: the pipeline's own log lines as they are (each step says what
it does, with counts), without Dagster's event lines, which `deliver -v` shows through Dagster's
console logger. The run's event log in the instance is the same either way."""

from __future__ import annotations

import logging
import sys

import dagster as dg


class _PipelineLines(logging.Handler):
    """Prints the messages the pipeline's steps log; drops Dagster's own events."""

    def emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, "dagster_meta", None)
        if meta is None or meta.get("dagster_event") is not None:
            return
        prefix = "warning: " if record.levelno >= logging.WARNING else ""
        print(prefix + str(meta.get("orig_message", "")), file=sys.stderr, flush=True)


@dg.logger(
    config_schema={"log_level": dg.Field(str, default_value="INFO", is_required=False)},
    description="The pipeline's own log lines, one per line on stderr (no Dagster event lines).",
)
def pipeline_lines(init_context: dg.InitLoggerContext) -> logging.Logger:
    logger = logging.Logger("kuhr_pipeline.steps", level=init_context.logger_config["log_level"])
    logger.addHandler(_PipelineLines())
    return logger
