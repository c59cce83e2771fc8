"""Small renderings for people: Markdown tables and previews.

Callers hand over pseudonymised tables only, but a preview is shown before validation has run,
so any run of 11 or more digits in a cell is hidden as well: free text copied from the source
could carry a fødselsnummer, and metadata is stored in the event log for good.
"""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa

from kuhr_pipeline.staging import Staging

_LONG_NUMBER = re.compile(r"[0-9]{11,}")
_PSEUDONYM = re.compile(r"[0-9a-f]{32}")
HIDDEN = "‹number hidden›"


def _cell(value: object) -> str:
    if value is None:
        return ""
    text = ", ".join(str(v) for v in value) if isinstance(value, list) else str(value)
    if not _PSEUDONYM.fullmatch(text):
        text = _LONG_NUMBER.sub(HIDDEN, text)
    return text.replace("|", "\\|")


def markdown_table(table: pa.Table, limit: int = 10) -> str:
    head = table.slice(0, limit)
    lines = ["| " + " | ".join(head.column_names) + " |", "|" + "---|" * head.num_columns]
    for row in head.to_pylist():
        lines.append("| " + " | ".join(_cell(v) for v in row.values()) + " |")
    return "\n".join(lines)


def preview(path: Path, limit: int, staging: Staging) -> str:
    """The first rows of a sealed Parquet file as a Markdown table, reading only those rows' batch."""
    with staging.parquet_file(path) as parquet:
        first = next(parquet.iter_batches(batch_size=limit), None)
    return markdown_table(pa.Table.from_batches([first]), limit) if first is not None and first.num_rows else "(empty)"


def count_chart(counts: dict[str, str], title: str, width: int = 30) -> str:
    """A Markdown bar chart (text bars), readable in the Dagster UI without images. Counts are text:
    a masked small count ("<5") is drawn as a stub."""
    numbers = {label: int(n) if n.isdigit() else 1 for label, n in counts.items()}
    top = max(numbers.values(), default=0) or 1
    lines = [f"| {title} | count | |", "|---|---:|---|"]
    for label, n in counts.items():
        lines.append(
            f"| {label} | {n} | {'█' * max(1 if numbers[label] else 0, round(width * numbers[label] / top))} |"
        )
    return "\n".join(lines)
