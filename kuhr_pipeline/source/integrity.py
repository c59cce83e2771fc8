"""A source the pipeline must not deliver from (source contract: "A source the pipeline must not
deliver from"): refused before anything is delivered, naming the file and what is wrong.

Cheap by design: the layout is a walk of the folder, and the timestamps are judged from each row
group's statistics in the files' footers; a file's timestamp column is read only when its
statistics are missing or show a defect, to count the claims that have it.
"""

from __future__ import annotations

import os
import re
from datetime import date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from kuhr_pipeline.errors import SourceError
from kuhr_pipeline.source.schema import PARTITION_COLUMN, SOURCE_SCHEMA

TIMESTAMP = "behandlingstidspunkt"
_YEAR_FOLDER = re.compile(rf"{PARTITION_COLUMN}=(\d{{4}})")
FIX = "re-export the source; nothing was delivered"


def refuse_links_and_strays(root: Path) -> None:
    """No file or folder reached through a symbolic link (a link to `..` repeats the source), and
    no data file outside an `ar=YYYY/` folder."""
    for folder, subfolders, files in os.walk(root, followlinks=False):
        here = Path(folder)
        for name in [*subfolders, *files]:
            if (here / name).is_symlink():
                raise SourceError.single(str(here / name), "(file)", "is a symbolic link", FIX)
        for name in files:
            if name.startswith((".", "_")):
                continue  # hidden and metadata files: the dataset reader skips them as well
            if here.parent != root or not _YEAR_FOLDER.fullmatch(here.name):
                raise SourceError.single(
                    str(here / name), "(file)", f"lies outside an {PARTITION_COLUMN}=YYYY folder of the source", FIX
                )


def refuse_damaged_years(dataset: ds.Dataset, years: list[int], first: int, last: int, now: datetime) -> None:
    """In the years `first`–`last`: no gap between years the source has, and in each file no claim
    without a timestamp, dated in another year than its folder's, or dated after `now` (naive,
    the register's wall-clock time)."""
    gaps = [
        y for y in range(first, last + 1) if y not in years and any(h < y for h in years) and any(h > y for h in years)
    ]
    if gaps:
        raise SourceError.single(
            str(Path(dataset.files[0]).parent.parent),
            f"{PARTITION_COLUMN}={gaps[0]}",
            f"is missing or holds no claim while the source has years before and after it ({len(gaps)} year(s))",
            FIX,
        )
    selected = (ds.field(PARTITION_COLUMN) >= first) & (ds.field(PARTITION_COLUMN) <= last)
    for fragment in dataset.get_fragments(filter=selected):
        year = int(ds.get_partition_keys(fragment.partition_expression)[PARTITION_COLUMN])
        _refuse_bad_timestamps(fragment, year, now)
        _refuse_nulls(fragment, year)


def _refuse_bad_timestamps(fragment: ds.ParquetFileFragment, year: int, now: datetime) -> None:
    start, end = datetime(year, 1, 1), datetime(year + 1, 1, 1)
    if _statistics_clear(fragment.metadata, start, end, now):
        return
    stamps = pq.read_table(fragment.path, columns=[TIMESTAMP], filesystem=fragment.filesystem).column(0)
    stamps = pc.cast(stamps, pa.timestamp("ms"), safe=False)  # finer units cut to the millisecond, as scans do
    nulls = stamps.null_count
    if nulls:
        raise SourceError.single(
            fragment.path, TIMESTAMP, f"is null in {nulls:,} claims of {year}; the source contract requires it", FIX
        )
    outside = _count(pc.or_(pc.less(stamps, start), pc.greater_equal(stamps, end)))
    if outside:
        raise SourceError.single(
            fragment.path,
            TIMESTAMP,
            f"lies outside {year} (the file's {PARTITION_COLUMN}= folder) in {outside:,} claims",
            FIX,
        )
    future = _count(pc.greater(stamps, pa.scalar(now, pa.timestamp("ms"))))
    if future:
        raise SourceError.single(fragment.path, TIMESTAMP, f"lies in the future in {future:,} claims", FIX)


# Columns the source contract says are never null (the timestamp is judged above; the list
# columns' footers cannot tell a null list from an empty one, so they are read where used).
NEVER_NULL = [f.name for f in SOURCE_SCHEMA if not f.nullable and f.name != TIMESTAMP and not pa.types.is_list(f.type)]


def _refuse_nulls(fragment: ds.ParquetFileFragment, year: int) -> None:
    """No null in a column the contract makes required: counted from the footers' statistics,
    reading a column only when its statistics are missing or show nulls."""
    metadata = fragment.metadata
    names = metadata.schema.to_arrow_schema().names
    for name in NEVER_NULL:
        if name not in names:
            continue  # the schema check names a missing column
        index = names.index(name)
        clear = True
        for group in range(metadata.num_row_groups):
            stats = metadata.row_group(group).column(index).statistics
            if metadata.row_group(group).num_rows and (stats is None or stats.null_count is None or stats.null_count):
                clear = False
                break
        if clear:
            continue
        nulls = pq.read_table(fragment.path, columns=[name], filesystem=fragment.filesystem).column(0).null_count
        if nulls:
            raise SourceError.single(
                fragment.path, name, f"is null in {nulls:,} claims of {year}; the source contract requires it", FIX
            )


def _statistics_clear(metadata: pq.FileMetaData, start: datetime, end: datetime, now: datetime) -> bool:
    """True when every row group's statistics show no defect (False: missing, or a defect)."""
    index = metadata.schema.to_arrow_schema().get_field_index(TIMESTAMP)
    latest = min(end, now)
    for group in range(metadata.num_row_groups):
        column = metadata.row_group(group).column(index)
        stats = column.statistics
        if metadata.row_group(group).num_rows == 0:
            continue
        if stats is None or not stats.has_min_max or stats.null_count is None or stats.null_count > 0:
            return False
        low, high = _as_datetime(stats.min), _as_datetime(stats.max)
        if low is None or high is None or low < start or high >= end or high > latest:
            return False
    return True


def _as_datetime(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    return None


def _count(mask: pa.ChunkedArray) -> int:
    return int(pc.sum(pc.fill_null(mask, False).cast(pa.int64())).as_py() or 0)
