"""Opening a source dataset and streaming it with column projection and partition pruning.

Nothing here reads a whole source into memory: callers get record batches of at most
`BATCH_ROWS` rows, and at most `READ_AHEAD` batches are decoded ahead of them (see `scan`): Arrow's own
cross-file readahead grew with the number of files when the caller was the slower side.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from kuhr_pipeline import clock
from kuhr_pipeline.errors import Problem, SourceError
from kuhr_pipeline.source.integrity import refuse_damaged_years, refuse_links_and_strays
from kuhr_pipeline.source.prefetch import prefetched
from kuhr_pipeline.source.schema import PARTITION_COLUMN, PARTITIONING, SOURCE_SCHEMA, type_matches

BATCH_ROWS = 256 * 1024
# Batches decoded ahead of the reader: a default writer's row group (1 Mi rows), so that the next
# group decodes while the reader works through this one (2 made it wait; bench/README.md, tenth session)
READ_AHEAD = 4


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

    def require_sound_period(self, start: date, end: date, period_from: date | None = None) -> None:
        """SourceError unless the years of [start, end] are whole: no gap (a year missing, or one
        whose files hold no claim, between years that have claims), and every claim dated,
        in its folder's year and not in the future (the source contract's damaged source); and
        unless the source holds the period from its first year (`period_from`)."""
        with_claims = self.years_with_claims()
        refuse_damaged_years(self.dataset, with_claims, start.year, end.year, clock.register_now())
        before = period_before_source(with_claims, period_from) if period_from else None
        if before:
            raise SourceError.single(str(self.path), "period.from", *before)

    def years_with_claims(self) -> list[int]:
        return [year for year in self.years if self.rows_in_years(year, year) > 0]  # an empty year is a gap

    def rows_in_years(self, first: int, last: int) -> int:
        """Claims in the partitions of these years, from the files' footers (no data is read)."""
        selected = (ds.field(PARTITION_COLUMN) >= first) & (ds.field(PARTITION_COLUMN) <= last)
        return sum(fragment.metadata.num_rows for fragment in self.dataset.get_fragments(filter=selected))


def period_before_source(years_with_claims: list[int], period_from: date) -> tuple[str, str] | None:
    """(problem, fix) when the period starts in a year before the source's first: those years
    would be delivered empty without a word."""
    if not years_with_claims or period_from.year >= years_with_claims[0]:
        return None
    first = years_with_claims[0]
    return (
        f"{period_from} is in {period_from.year}, but the source's first year with claims is {first}: "
        f"{period_from.year}–{first - 1} would be delivered empty",
        f"start the period in {first}, or deliver from an export that holds {period_from.year}",
    )


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
    refuse_links_and_strays(path)
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


def _period_filter(start: date, end: date) -> ds.Expression:
    """Claims whose date lies in [start, end]: prunes ar partitions, then filters the timestamp."""
    lower, upper = _bounds(start, end)
    return (
        (ds.field(PARTITION_COLUMN) >= start.year)
        & (ds.field(PARTITION_COLUMN) <= end.year)
        & (ds.field("behandlingstidspunkt") >= pa.scalar(lower, pa.timestamp("ms")))
        & (ds.field("behandlingstidspunkt") < pa.scalar(upper, pa.timestamp("ms")))
    )


def scan(
    source: Source,
    columns: Sequence[str],
    period: tuple[date, date] | None = None,
    batch_rows: int = BATCH_ROWS,
    as_dictionary: Collection[str] = (),
    clip: bool = True,
    as_bytes: Collection[str] = (),
) -> Iterator[pa.RecordBatch]:
    """Stream the given columns of the claims dated in `period` (inclusive; None: all), batch by batch.

    Files whose `ar` partition cannot match are skipped, and so are row groups whose statistics
    lie outside the period; the rest are read one at a time, a file's row groups decoded on
    Arrow's threads, at most `READ_AHEAD` batches ahead of the caller (prefetch.py).

    Columns named in `as_dictionary` come dictionary-encoded (each distinct value once, an index
    per row; for a list of codes, its elements): cheaper to read than the strings, so a caller
    that keeps few rows decodes only those (`decoded`) and matches codes on the dictionary.
    Columns named in `as_bytes` come as binary: the same bytes without the UTF-8 check, a third
    cheaper to read, for a caller that only compares them.

    With `clip=False` a row group that lies partly in the period comes whole: for a caller that
    keeps few rows and checks their dates itself (filtering every column of a group cost more
    than reading it; bench/README.md)."""
    for _, batch in scan_pieces(source, columns, period, batch_rows, as_dictionary, clip=clip, as_bytes=as_bytes):
        yield batch


def scan_pieces(
    source: Source,
    columns: Sequence[str],
    period: tuple[date, date] | None = None,
    batch_rows: int = BATCH_ROWS,
    as_dictionary: Collection[str] = (),
    pieces: Collection[int] | None = None,
    clip: bool = True,
    as_bytes: Collection[str] = (),
) -> Iterator[tuple[int, pa.RecordBatch]]:
    """`scan`, each batch with the number of the piece (a file's row group) it comes from.

    Pieces are numbered in scan order, the same for every scan of a period; with `pieces` only
    those are read, so a caller can come back for a few rows of a column it skipped."""
    row_filter = _period_filter(*period) if period else None
    schema = pa.schema(
        [
            _dictionary_field(f) if f.name in as_dictionary else f.with_type(pa.binary()) if f.name in as_bytes else f
            for f in _in_milliseconds(source.dataset.schema)
        ]
    )
    leaves = {leaf for name in as_dictionary for leaf in parquet_leaves(name)}
    file_format = ds.ParquetFileFormat(
        read_options=ds.ParquetReadOptions(dictionary_columns=leaves),
        default_fragment_scan_options=ds.ParquetFragmentScanOptions(pre_buffer=False),  # no whole-group buffers
    )

    def batches() -> Iterator[tuple[int, pa.RecordBatch]]:
        number = -1
        for found in source.dataset.get_fragments(filter=row_filter):
            # read with this scan's options; its row groups share one parsed footer
            fragment = file_format.make_fragment(found.path, source.dataset.filesystem, found.partition_expression)
            as_written = _as_written(schema, fragment.physical_schema)
            for group, group_filter in _row_groups(fragment, period):
                number += 1
                if pieces is not None and number not in pieces:
                    continue
                for batch in fragment.subset(row_group_ids=[group]).to_batches(
                    schema=as_written,
                    columns=list(columns),
                    filter=group_filter if clip else None,
                    batch_size=batch_rows,
                    batch_readahead=1,
                    use_threads=True,
                ):
                    yield number, batch if as_written is schema else _to_milliseconds(batch)

    with _reading(source):
        for number, batch in prefetched(batches(), depth=READ_AHEAD):
            if batch.num_rows:
                yield number, batch


def _in_milliseconds(schema: pa.Schema) -> pa.Schema:
    """The schema with every timestamp in milliseconds: what the pipeline works in, whatever unit
    (ms or finer, source contract) a file was written in."""
    return pa.schema([f.with_type(pa.timestamp("ms")) if pa.types.is_timestamp(f.type) else f for f in schema])


def _as_written(schema: pa.Schema, physical: pa.Schema) -> pa.Schema:
    """`schema` with the timestamps in the file's own unit (Arrow refuses to read finer ones into
    milliseconds when they have sub-millisecond parts); `schema` itself when they are the same."""
    finer = {f.name: f.type for f in physical if pa.types.is_timestamp(f.type) and f.type.unit != "ms"}
    if not finer:
        return schema
    return pa.schema([f.with_type(finer[f.name]) if f.name in finer else f for f in schema])


def _to_milliseconds(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Finer timestamps cut to the millisecond (the contract's resolution), every other column as read."""
    columns = [
        pc.cast(column, pa.timestamp("ms"), safe=False) if pa.types.is_timestamp(column.type) else column
        for column in batch.columns
    ]
    return pa.RecordBatch.from_arrays(columns, schema=_in_milliseconds(batch.schema))


def parquet_leaves(column: str) -> set[str]:
    """The names the Parquet column holding a column's values can have: its own, or for a list its
    elements' (`.list.element`, or `.list.item` by older writers). Reading options take these."""
    return {column, f"{column}.list.element", f"{column}.list.item"}


def _dictionary_field(field: pa.Field) -> pa.Field:
    """The field read dictionary-encoded: its strings, or a list's elements."""
    if pa.types.is_list(field.type):
        return field.with_type(pa.list_(pa.dictionary(pa.int32(), field.type.value_type)))
    if pa.types.is_large_list(field.type):
        return field.with_type(pa.large_list(pa.dictionary(pa.int32(), field.type.value_type)))
    return field.with_type(pa.dictionary(pa.int32(), field.type))


def decoded(column: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """A column as plain values: dictionary-encoded strings or list elements decoded, a column read
    `as_bytes` back to the schema's text (checked as UTF-8 here, on the rows kept), others as they are."""
    kind = column.type
    if pa.types.is_binary(kind):
        return pc.cast(column, pa.string())
    if pa.types.is_dictionary(kind):
        return pc.cast(column, kind.value_type)
    if pa.types.is_list(kind) and pa.types.is_dictionary(kind.value_type):
        return pc.cast(column, pa.list_(kind.value_type.value_type))
    if pa.types.is_large_list(kind) and pa.types.is_dictionary(kind.value_type):
        return pc.cast(column, pa.large_list(kind.value_type.value_type))
    return column


def head(source: Source, columns: Sequence[str], period: tuple[date, date], rows: int) -> pa.Table:
    """Up to `rows` claims of the period (source columns only), from the start of its first file.

    Read incrementally with Parquet's own batch reader, so a sample costs about its own rows: a
    dataset scan decodes a whole row group before it hands out the first batch (bench/README.md)."""
    schema = pa.schema([_in_milliseconds(source.dataset.schema).field(c) for c in columns])
    lower, upper = (pa.scalar(bound, pa.timestamp("ms")) for bound in _bounds(*period))
    read = list(dict.fromkeys([*columns, "behandlingstidspunkt"]))
    parts: list[pa.RecordBatch] = []
    wanted = rows
    with _reading(source):
        for fragment in source.dataset.get_fragments(filter=_period_filter(*period)):
            for group, group_filter in _row_groups(fragment, period):
                with pq.ParquetFile(fragment.path) as file:
                    for batch in file.iter_batches(
                        batch_size=min(wanted, BATCH_ROWS), row_groups=[group], columns=read
                    ):
                        if group_filter is not None:
                            stamps = batch.column("behandlingstidspunkt")
                            batch = batch.filter(pc.and_(pc.greater_equal(stamps, lower), pc.less(stamps, upper)))
                        batch = _to_milliseconds(batch.slice(0, wanted).select(list(columns))).cast(schema)
                        parts.append(batch)
                        wanted -= batch.num_rows
                        if not wanted:
                            return pa.Table.from_batches(parts, schema)
    return pa.Table.from_batches(parts, schema)


@contextmanager
def _reading(source: Source) -> Iterator[None]:
    """Arrow's read errors as the project's error, naming the source."""
    try:
        yield
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
        raise SourceError.single(
            str(source.path),
            "(data)",
            f"cannot be read: {_first_line(exc)}",
            "re-export the damaged file; nothing was delivered",
        ) from None


def _row_groups(fragment: ds.Fragment, period: tuple[date, date] | None) -> Iterator[tuple[int, ds.Expression | None]]:
    """A file's row groups that can hold claims of the period, each with the filter it still needs.

    None where the group's statistics show every claim inside the period (no nulls, min and max
    within it), which is nearly always: comparing every timestamp cost a fifth of a scan."""
    metadata = fragment.metadata
    if period is None:
        yield from ((group, None) for group in range(metadata.num_row_groups))
        return
    row_filter = _period_filter(*period)
    lower, upper = _bounds(*period)
    column = next(i for i in range(metadata.num_columns) if metadata.schema.column(i).path == "behandlingstidspunkt")
    for group in range(metadata.num_row_groups):
        stats = metadata.row_group(group).column(column).statistics
        known = stats is not None and stats.has_min_max and stats.has_null_count
        if known and isinstance(stats.min, datetime) and isinstance(stats.max, datetime):
            if stats.max < lower or stats.min >= upper:
                continue  # nothing of the period in this group
            if stats.null_count == 0 and stats.min >= lower and stats.max < upper:
                yield group, None
                continue
        yield group, row_filter


def _bounds(start: date, end: date) -> tuple[datetime, datetime]:
    """The period as a half-open range of timestamps: [start 00:00, the day after end 00:00)."""
    return datetime.combine(start, time.min), datetime.combine(end + timedelta(days=1), time.min)


def changed_while_read(source: Path) -> SourceError:
    """For a caller that reads the source twice and finds other claims the second time."""
    return SourceError(
        Problem(
            str(source),
            "(data)",
            "changed while it was being read: a second reading met other claims than the first",
            "run again once the export is complete; nothing was delivered",
        )
    )


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
