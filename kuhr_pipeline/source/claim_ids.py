"""No claim twice: every `regning_id` of the years a run reads is used by one claim only (source
contract: two bills with one id anywhere in the years a run reads refuse the source), checked once
for each version of those years' files.

Why once: reading `regning_id` (plain, the widest column of the source) and settling it cost a
20 M-claim delivery about 1.1 s of its 9 when every run did it (bench/README.md, thirteenth
session), for a verdict that changes only when the export does. A year found clean is recorded
with the identity of each of its files (path, size, modification time, and a digest of its
Parquet footer, which holds every column chunk's offsets and statistics): a file added, removed,
rewritten or touched makes a new version, checked again. The records are signed (HMAC-SHA256
with a key derived from the pseudonym master key), so a record copied from another deployment,
or written by hand, is not taken for a check.

The years are checked together and whole: every claim in them, not only the cohort's, so a bill
re-dated into the next year with its id is found as surely as one exported twice into one year.
A record holds for exactly that set of year versions: a run over more years, or a changed file,
checks again.

Settled on 64-bit hashes of the ids, sorted: no two equal, no id twice. Equal hashes are
settled on the ids themselves (read again, those few only). Memory: bounded by MAX_HASHES (8 bytes
each, 256 MiB), whatever the number of claims: more claims are checked in parts, each a share of
the hash values (h mod parts), a read of the years' ids each.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from kuhr_pipeline import clock
from kuhr_pipeline.errors import SourceError
from kuhr_pipeline.source.integrity import FIX
from kuhr_pipeline.source.scan import Source, changed_while_read, scan
from kuhr_pipeline.source.schema import PARTITION_COLUMN, SOURCE_SCHEMA

CLAIM_ID = "regning_id"
MAX_HASHES = 32 * 1024 * 1024  # hashes held at once: 256 MiB
_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
_FOOTER_END = 8  # a Parquet file ends with its footer's length (4 bytes) and b"PAR1"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class FileVersion:
    path: str
    size: int
    modified_ns: int
    footer_sha256: str


@dataclass(frozen=True)
class YearVersion:
    """A year's files as they are now: what a record of a check of that year is valid for."""

    year: int
    files: tuple[FileVersion, ...]

    def digest(self) -> str:
        return hashlib.sha256(_canonical(asdict(self))).hexdigest()


def year_version(source: Source, year: int) -> YearVersion:
    """The identity of each file of `year` in the source (read from the file system and the
    files' footers; no data is read)."""
    files = []
    for path in sorted(fragment.path for fragment in _year_fragments(source, year)):
        status = os.stat(path)
        files.append(FileVersion(path, status.st_size, status.st_mtime_ns, _footer_digest(Path(path))))
    return YearVersion(year, tuple(files))


@dataclass(frozen=True)
class YearsVersion:
    """The files of the years a run reads, as they are now: what one check is valid for."""

    years: tuple[YearVersion, ...]

    def digest(self) -> str:
        return hashlib.sha256(_canonical(asdict(self))).hexdigest()

    @property
    def span(self) -> str:
        return f"{self.years[0].year}-{self.years[-1].year}" if self.years else "none"


def years_version(source: Source, years: list[int]) -> YearsVersion:
    return YearsVersion(tuple(year_version(source, year) for year in years))


def source_version(source: Source, first: int, last: int) -> str:
    """The identity of every file of the years `first`–`last` (which years there are, and each
    file's path, size, modification time and footer): what a run checked, so that each of its
    scan steps reads exactly that source."""
    years = [year_version(source, year).digest() for year in source.years if first <= year <= last]
    return hashlib.sha256(_canonical({"years": years})).hexdigest()


def require_checked_source(source: Source, first: int, last: int, checked: str) -> None:
    """SourceError (exit 3) when the source is not the one the run checked: a file added,
    removed or changed between the check and this scan."""
    if source_version(source, first, last) != checked:
        raise SourceError.single(
            str(source.path),
            "(source)",
            f"changed while the run read it (a file of {first}–{last} was added, removed or rewritten after the "
            "run checked the source); nothing was delivered",
            "deliver again once the export is complete and no longer changing",
        )


def _year_fragments(source: Source, year: int) -> Iterator[ds.ParquetFileFragment]:
    return source.dataset.get_fragments(filter=ds.field(PARTITION_COLUMN) == year)


def _footer_digest(path: Path) -> str:
    with path.open("rb") as file:
        file.seek(-_FOOTER_END, os.SEEK_END)
        end = file.read(_FOOTER_END)
        length = int.from_bytes(end[:4], "little")
        file.seek(-(_FOOTER_END + length), os.SEEK_END)
        return hashlib.sha256(file.read(length) + end).hexdigest()


class CheckedYears:
    """The signed records of the sets of years found without a repeated claim id, one file per
    version in `folder` (written whole or not at all; two runs recording one version write the same)."""

    def __init__(self, folder: Path, master_key: bytes) -> None:
        self.folder = folder
        self._key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=b"kuhr-pipeline source checks v1", info=b"regning_id"
        ).derive(master_key)

    def holds(self, version: YearsVersion) -> bool:
        """True when this version of the years was checked and found clean (by this deployment)."""
        try:
            record = json.loads(self._path(version).read_text(encoding="utf-8"))
            body, mac = record["body"], record["mac"]
            return hmac.compare_digest(mac, self._mac(body)) and _canonical(body["version"]) == _canonical(
                asdict(version)
            )
        except (OSError, ValueError, KeyError, TypeError):  # no record, or not one this deployment signed
            return False

    def record(self, version: YearsVersion, claims: int) -> None:
        body = {"version": asdict(version), "claims": claims, "checked": clock.register_now().isoformat()}
        self.folder.mkdir(parents=True, exist_ok=True)
        final = self._path(version)
        tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps({"body": body, "mac": self._mac(body)}, indent=1), encoding="utf-8")
            tmp.replace(final)
        finally:
            tmp.unlink(missing_ok=True)

    def _path(self, version: YearsVersion) -> Path:
        return self.folder / f"{version.span}-{version.digest()[:32]}.json"

    def _mac(self, body: object) -> str:
        return hmac.new(self._key, _canonical(body), hashlib.sha256).hexdigest()


def _canonical(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def require_distinct_claim_ids(
    source: Source, first: int, last: int, checked: CheckedYears, log: Progress | None = None
) -> None:
    """SourceError naming the files and the number of repeated ids when the years of
    `first`–`last` use a `regning_id` for more than one claim, within a year or across years.
    Years whose files are unchanged since they were found clean together are not read again."""
    years = [year for year in source.years if first <= year <= last]
    version = years_version(source, years)
    if not years or checked.holds(version):
        return
    claims = source.rows_in_years(years[0], years[-1])
    if log:
        log(f"source: checking that no regning_id of {version.span} is used twice ({claims:,} claims; once per export)")
    repeated = repeated_claim_ids(source, years)
    if len(repeated):
        _refuse(source, years, repeated)
    for year in years:
        refuse_null_lists(source, year)
    checked.record(version, claims)


LIST_COLUMNS = [f.name for f in SOURCE_SCHEMA if not f.nullable and pa.types.is_list(f.type)]


def refuse_null_lists(source: Source, year: int) -> None:
    """No null where the contract wants a list (an empty one is allowed): read once per export
    with the claim ids (a footer cannot tell a null list from an empty one)."""
    nulls = dict.fromkeys(LIST_COLUMNS, 0)
    for batch in scan(source, LIST_COLUMNS, (date(year, 1, 1), date(year, 12, 31)), clip=False):
        for name in LIST_COLUMNS:
            nulls[name] += batch.column(name).null_count
    for name, count in nulls.items():
        if count:
            raise SourceError.single(
                str(source.path / f"{PARTITION_COLUMN}={year}"),
                name,
                f"is null in {count:,} claims of {year}; the source contract requires a list (empty if none)",
                FIX,
            )


def repeated_claim_ids(source: Source, years: list[int]) -> pa.Array:
    """The ids used by more than one claim of `years`, within one year or across them (nulls are
    not ids)."""
    claims = sum(source.rows_in_years(year, year) for year in years)
    parts = max(1, math.ceil(claims / MAX_HASHES))
    suspects = [_equal_hashes(source, years, claims, part, parts) for part in range(parts)]
    suspect = np.unique(np.concatenate(suspects))
    if not len(suspect):
        return pa.array([], pa.binary())
    ids = [batch.filter(pa.array(_isin(hashes, suspect))) for batch, hashes in _hashed(source, years)]
    counts = pc.value_counts(pa.chunked_array(ids, pa.binary()).combine_chunks())
    return counts.filter(pc.greater(counts.field("counts"), 1)).field("values")


def _equal_hashes(source: Source, years: list[int], claims: int, part: int, parts: int) -> np.ndarray:
    """The hash values that two or more claims' ids of `years` share, among the hashes h with
    h mod parts == part. Held in one array, sorted in place: an array as long as the claims,
    whose pages beyond the part's share are never touched (so never in memory)."""
    every = np.empty(claims, dtype=np.uint64)
    held = 0
    for _, hashed in _hashed(source, years):
        if parts > 1:
            hashed = hashed[hashed % np.uint64(parts) == part]
        if held + len(hashed) > len(every):
            raise changed_while_read(source.path)  # more claims than the footers said when we began
        every[held : held + len(hashed)] = hashed
        held += len(hashed)
    every = every[:held]
    every.sort()
    return np.unique(every[1:][every[1:] == every[:-1]])


def _hashed(source: Source, years: list[int]) -> Iterator[tuple[pa.Array, np.ndarray]]:
    """Each batch's ids of `years` (as bytes, nulls left out) with their hashes."""
    for year in years:
        period = (date(year, 1, 1), date(year, 12, 31))
        for batch in scan(source, [CLAIM_ID], period, clip=False, as_bytes=[CLAIM_ID]):
            ids = batch.column(0)
            if ids.null_count:
                ids = ids.drop_null()
            yield ids, id_hashes(ids)


def id_hashes(ids: pa.Array) -> np.ndarray:
    """64-bit FNV-1a hashes of binary ids (no nulls), a byte column at a time: all at once when
    the ids have one length (as a register's do), else the ids of each length apart."""
    if not len(ids):
        return np.zeros(0, dtype=np.uint64)
    lengths = pc.binary_length(ids)
    shortest, longest = (value.as_py() for value in pc.min_max(lengths).values())
    if shortest == longest:
        return _fixed_width(ids, longest)
    widths = lengths.to_numpy()
    hashes = np.empty(len(ids), dtype=np.uint64)
    for width in np.unique(widths).tolist():
        rows = np.flatnonzero(widths == width)
        hashes[rows] = _fixed_width(ids.take(pa.array(rows)), width)
    return hashes


def _fixed_width(ids: pa.Array, width: int) -> np.ndarray:
    hashes = np.full(len(ids), _FNV_OFFSET, dtype=np.uint64)
    if not width:
        return hashes
    fixed = ids.cast(pa.binary(width))
    data = np.frombuffer(fixed.buffers()[1], dtype=np.uint8, count=len(fixed) * width, offset=fixed.offset * width)
    for column in data.reshape(len(fixed), width).T:
        hashes ^= column
        hashes *= _FNV_PRIME
    return hashes


def _isin(hashes: np.ndarray, sorted_values: np.ndarray) -> np.ndarray:
    at = np.minimum(np.searchsorted(sorted_values, hashes), len(sorted_values) - 1)
    return sorted_values[at] == hashes


def _refuse(source: Source, years: list[int], repeated: pa.Array) -> None:
    wanted = ds.field(CLAIM_ID).isin(repeated.slice(0, 1000).cast(pa.string()))  # the files of the first thousand
    files = sorted(
        fragment.path
        for year in years
        for fragment in _year_fragments(source, year)
        if fragment.count_rows(filter=wanted)
    )
    example = repeated[0].as_py().decode("utf-8", "replace")
    raise SourceError.single(
        ", ".join(files),
        CLAIM_ID,
        f"{len(repeated):,} ids are used by more than one claim (e.g. {example!r}); "
        "a file or a year may have been exported twice, or a bill re-dated into another year",
        FIX,
    )
