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

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from kuhr_pipeline.errors import SourceError
from kuhr_pipeline.source.schema import PARTITION_COLUMN

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
            f"is missing while the source has years before and after it ({len(gaps)} year(s) missing)",
            FIX,
        )
    selected = (ds.field(PARTITION_COLUMN) >= first) & (ds.field(PARTITION_COLUMN) <= last)
    for fragment in dataset.get_fragments(filter=selected):
        year = int(ds.get_partition_keys(fragment.partition_expression)[PARTITION_COLUMN])
        _refuse_bad_timestamps(fragment, year, now)


def _refuse_bad_timestamps(fragment: ds.ParquetFileFragment, year: int, now: datetime) -> None:
    start, end = datetime(year, 1, 1), datetime(year + 1, 1, 1)
    if _statistics_clear(fragment.metadata, start, end, now):
        return
    stamps = pq.read_table(fragment.path, columns=[TIMESTAMP], filesystem=fragment.filesystem).column(0)
    stamps = pc.cast(stamps, pa.timestamp("ms"))
    nulls = stamps.null_count
    if nulls:
        raise SourceError.single(fragment.path, TIMESTAMP, f"is null in {nulls:,} claims", FIX)
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


CLAIM_ID = "regning_id"


class DuplicateClaims:
    """Pass 2's check that no claim is there twice (a repeated file, a year exported twice): every
    `regning_id` of the cohort's claims in the period — the claims that can change a delivery, as
    claims or as entry claims that admit a person — must be unique. Fed batch by batch; held as
    the ids only (the size of the cohort's claims, which pass 2 stages anyway)."""

    def __init__(self) -> None:
        self._ids: list[pa.Array] = []
        self._hashes: list[np.ndarray] | None = []  # None: some ids could not be hashed here

    def add(self, ids: pa.Array) -> None:
        self._ids.append(ids)
        if self._hashes is not None:
            hashed = _fixed_width_hashes(ids)
            if hashed is None:
                self._hashes = None
            else:
                self._hashes.append(hashed)

    def refuse(self, dataset: ds.Dataset) -> None:
        """Raise SourceError naming the files and the number of repeated ids, if there are any.

        Usually settled by the ids' 64-bit hashes, sorted: no two equal, no two ids equal (a
        sixth of the cost of Arrow's `unique` on the ids). Equal hashes, or ids of varying
        lengths, are settled on the ids themselves."""
        if not self._ids:
            return
        if self._hashes is not None:
            hashes = np.sort(np.concatenate(self._hashes))
            if not np.any(hashes[1:] == hashes[:-1]):
                return
        ids = pa.chunked_array(self._ids).combine_chunks()
        if len(pc.unique(ids)) == len(ids):  # a third of the cost of counting each id
            return
        counts = pc.value_counts(ids)
        repeated = counts.filter(pc.greater(counts.field("counts"), 1)).field("values")
        if len(repeated) == 0:
            return
        wanted = ds.field(CLAIM_ID).isin(repeated.slice(0, 1000).cast(pa.string()))  # the files of the first thousand
        files = sorted(
            fragment.path
            for fragment in dataset.get_fragments()
            if fragment.count_rows(filter=wanted)  # only on this failure: a read of one column
        )
        raise SourceError.single(
            ", ".join(files),
            CLAIM_ID,
            f"{len(repeated):,} ids are used by more than one claim (e.g. {_text(repeated[0].as_py())!r}); "
            "a file or a year may have been exported twice",
            FIX,
        )


def _fixed_width_hashes(ids: pa.Array) -> np.ndarray | None:
    """FNV-1a hashes (64 bits) of ids that all have one length, as registers' claim ids do,
    a byte column at a time; None when they do not (or some are null)."""
    if ids.null_count:
        return None
    hashes = np.full(len(ids), _FNV_OFFSET, dtype=np.uint64)
    if not len(ids):
        return hashes
    shortest, width = pc.min_max(pc.binary_length(ids)).values()
    if shortest != width:
        return None
    width = width.as_py()
    fixed = ids.cast(pa.binary(width))
    data = np.frombuffer(fixed.buffers()[1], dtype=np.uint8, count=len(fixed) * width, offset=fixed.offset * width)
    for column in data.reshape(len(fixed), width).T:
        hashes ^= column
        hashes *= _FNV_PRIME
    return hashes


_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)


def _text(value: str | bytes) -> str:
    """An id as text (pass 2 reads ids as bytes)."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
