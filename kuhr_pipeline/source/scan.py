"""Opening a source dataset and streaming it with column projection and partition pruning.

Nothing here reads a whole source into memory: callers get record batches of at most
`BATCH_ROWS` rows, and at most two batches are decoded ahead of them (see `scan`): Arrow's own
cross-file readahead grew with the number of files when the caller was the slower side.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds

from kuhr_pipeline.errors import Problem, SourceError
from kuhr_pipeline.source.prefetch import prefetched
from kuhr_pipeline.source.schema import PARTITION_COLUMN, PARTITIONING, SOURCE_SCHEMA, type_matches

BATCH_ROWS = 256 * 1024


@dataclass(frozen=True)
class Source:
    """An opened, schema-checked source dataset."""

    path: Path
    dataset: ds.Dataset

    @property
    def years(self) -> list[int]:
        years = set()
        for fragment in self.dataset.get_fragments():
            expression = ds.get_partition_keys(fragment.partition_expression)
            if PARTITION_COLUMN in expression:
                years.add(int(expression[PARTITION_COLUMN]))
        return sorted(years)

    def rows_in_years(self, first: int, last: int) -> int:
        """Bills in the partitions of these years, from the files' footers (no data is read)."""
        selected = (ds.field(PARTITION_COLUMN) >= first) & (ds.field(PARTITION_COLUMN) <= last)
        return sum(fragment.metadata.num_rows for fragment in self.dataset.get_fragments(filter=selected))


def open_source(path: str | Path) -> Source:
    """Open and check a Hive-partitioned Parquet source; SourceError names what is wrong."""
    path = Path(path)
    where = str(path)
    if not path.exists():
        raise SourceError.single(where, "(dataset)", "does not exist", "set KUHR_SOURCE or --source to a source folder")
    if not path.is_dir():
        raise SourceError.single(
            where,
            "(dataset)",
            "is not a folder of Parquet files (a Hive-partitioned dataset)",
            "point at the folder that holds ar=YYYY/ subfolders",
        )
    try:
        dataset = ds.dataset(
            path,
            format="parquet",
            partitioning=ds.partitioning(PARTITIONING, flavor="hive"),
            exclude_invalid_files=False,
        )
    except (pa.ArrowInvalid, OSError) as exc:
        raise SourceError.single(
            where,
            "(dataset)",
            f"is not a readable Parquet dataset: {_first_line(exc)}",
            "check for truncated or foreign files in the folder",
        ) from None
    if not dataset.files:
        raise SourceError.single(
            where,
            "(dataset)",
            "is empty: no Parquet files",
            "generate a source with kuhr-pipeline synth or point at the register export",
        )
    check_schema(dataset.schema, where)
    for fragment in dataset.get_fragments():  # the dataset's schema is the first file's: check every file
        try:
            physical = fragment.physical_schema
        except (pa.ArrowInvalid, OSError) as exc:
            raise SourceError.single(
                fragment.path,
                "(file)",
                f"is not a readable Parquet file: {_first_line(exc)}",
                "re-export the damaged file; nothing was delivered",
            ) from None
        check_schema(pa.schema([*physical, pa.field(PARTITION_COLUMN, pa.int16())]), fragment.path)
    unpartitioned = [
        f.path for f in dataset.get_fragments() if PARTITION_COLUMN not in ds.get_partition_keys(f.partition_expression)
    ]
    if unpartitioned:
        raise SourceError.single(
            where,
            f"column {PARTITION_COLUMN}",
            f"is missing for {unpartitioned[0]}: the dataset is not partitioned by ar=YYYY folders",
            "export one folder per treatment year (ar=2015/…)",
        )
    return Source(path, dataset)


def check_schema(schema: pa.Schema, where: str) -> None:
    problems = []
    for expected in SOURCE_SCHEMA:
        index = schema.get_field_index(expected.name)
        if index < 0:
            problems.append((expected.name, f"is missing (expected {expected.type})"))
        elif not type_matches(expected.type, schema.field(index).type):
            problems.append((expected.name, f"has type {schema.field(index).type}, expected {expected.type}"))
    if problems:
        raise SourceError(
            [
                Problem(where, f"column {name}", text, "export the source as the source contract says")
                for name, text in problems
            ]
        )


def period_filter(start: date, end: date) -> ds.Expression:
    """Claims whose date lies in [start, end]: prunes ar partitions, then filters the timestamp."""
    lower = datetime.combine(start, time.min)
    upper = datetime.combine(end + timedelta(days=1), time.min)
    return (
        (ds.field(PARTITION_COLUMN) >= start.year)
        & (ds.field(PARTITION_COLUMN) <= end.year)
        & (ds.field("behandlingstidspunkt") >= pa.scalar(lower, pa.timestamp("ms")))
        & (ds.field("behandlingstidspunkt") < pa.scalar(upper, pa.timestamp("ms")))
    )


def scan(
    source: Source,
    columns: Sequence[str],
    row_filter: ds.Expression | None = None,
    batch_rows: int = BATCH_ROWS,
) -> Iterator[pa.RecordBatch]:
    """Stream the given columns of the rows matching the filter, batch by batch.

    Files whose `ar` partition cannot match are skipped; the rest are read one at a time, a file's
    row groups decoded on Arrow's threads, at most two batches ahead of the caller (prefetch.py)."""
    options = ds.ParquetFragmentScanOptions(pre_buffer=False)  # no whole-row-group read buffers

    def batches() -> Iterator[pa.RecordBatch]:
        for fragment in source.dataset.get_fragments(filter=row_filter):
            yield from fragment.to_batches(
                schema=source.dataset.schema,
                columns=list(columns),
                filter=row_filter,
                batch_size=batch_rows,
                batch_readahead=1,
                fragment_scan_options=options,
                use_threads=True,
            )

    try:
        for batch in prefetched(batches()):
            if batch.num_rows:
                yield batch
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
        raise SourceError.single(
            str(source.path),
            "(data)",
            f"cannot be read: {_first_line(exc)}",
            "re-export the damaged file; nothing was delivered",
        ) from None


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
