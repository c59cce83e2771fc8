"""The extract: exactly the approved variables, in the spec's order, generalised as approved.

Reads the staged cohort claims batch by batch and writes one Parquet file (or one per year with
`split_by: year`); never holds the whole extract in memory.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from kuhr_pipeline.application.model import ApplicationSpec
from kuhr_pipeline.application.plan import YEAR_COLUMN
from kuhr_pipeline.disclosure import kanon
from kuhr_pipeline.extract.generalise import generalise
from kuhr_pipeline.source.integrity import TIMESTAMP
from kuhr_pipeline.source.prefetch import prefetched
from kuhr_pipeline.staging import SealedParquetWriter, Staging


def select_variables(
    batch: pa.RecordBatch | pa.Table, variables: list[tuple[str, str]], map_year: int | None = None
) -> pa.Table:
    years = batch.column(YEAR_COLUMN) if map_year is not None else None
    return pa.table({name: generalise(batch.column(name), how, years, map_year) for name, how in variables})


@dataclass(frozen=True)
class ExtractFiles:
    """The extract's files in staging: name → (path, rows)."""

    files: dict[str, tuple[Path, int]]
    schema: pa.Schema

    @property
    def rows(self) -> int:
        return sum(rows for _, rows in self.files.values())

    def tables(self) -> Iterator[tuple[str, Path]]:
        yield from ((name, path) for name, (path, _) in sorted(self.files.items()))


def build_extract(
    spec: ApplicationSpec,
    cohort_claims: Path,
    staging: Staging,
    out: Staging,
    on_table: Callable[[pa.Table], None] | None = None,
) -> ExtractFiles:
    """Write `claims.parquet` (or `claims_YYYY.parquet` per year), sealed, into `out`; `on_table` sees
    each generalised table as it is handed to the writer.

    Parquet's encoding (most of the time here, and free of the GIL) runs on a thread of its own
    while the next batch is generalised and `on_table` works; at most two batches wait for it."""
    variables = spec.plan.pairs
    split = spec.delivery.split_by == "year"
    out_dir = out.make()
    writers: dict[str, SealedParquetWriter] = {}
    counts: dict[str, int] = {}
    schema: pa.Schema | None = None
    pending: deque[Future[None]] = deque()

    def write(name: str, table: pa.Table) -> None:
        pending.append(encoder.submit(_write, writers, counts, out, name, table))
        if len(pending) > 2:
            pending.popleft().result()

    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kuhr-extract") as encoder:  # one: files in order
            for batch in prefetched(staging.batches(cohort_claims)):  # unsealed and decompressed meanwhile
                table = select_variables(batch, variables, spec.plan.map_year)
                schema = table.schema
                if split:
                    years = batch.column(YEAR_COLUMN)
                    for y in pc.unique(years).to_pylist():
                        write(f"claims_{y}", table.filter(pc.equal(years, y)))
                else:
                    write("claims", table)
                if on_table is not None:
                    on_table(table)
            if schema is None:
                empty = select_variables(staging.schema(cohort_claims).empty_table(), variables, spec.plan.map_year)
                schema = empty.schema
                if not split:
                    write("claims", empty)
                if on_table is not None:
                    on_table(empty)
            while pending:
                pending.popleft().result()
        for writer in writers.values():
            writer.close()
        writers.clear()
        files = {}
        for name, rows in counts.items():
            final = out_dir / f"{name}.parquet"
            (out_dir / f".{name}.parquet.tmp").replace(final)
            files[name] = (final, rows)
        return ExtractFiles(files, schema)
    finally:
        for writer in writers.values():
            writer.close()
        for tmp in out_dir.glob(".*.tmp"):
            tmp.unlink(missing_ok=True)


def _write(
    writers: dict[str, SealedParquetWriter], counts: dict[str, int], out: Staging, name: str, table: pa.Table
) -> None:
    if name not in writers:
        writers[name] = out.parquet_writer(out.path(f".{name}.parquet.tmp"), table.schema, statistics=[TIMESTAMP])
        counts[name] = 0
    writers[name].write_table(table)
    counts[name] += table.num_rows


def build_extract_with_report(
    spec: ApplicationSpec, cohort_claims: Path, staging: Staging
) -> tuple[ExtractFiles, dict[str, Any]]:
    """The extract (into `staging`'s `extract/`), and its k-anonymity report gathered from the same
    write (kept in staging for the delivery)."""
    classes = kanon.EquivalenceClasses(spec.plan.names)
    files = build_extract(spec, cohort_claims, staging, staging.sub("extract"), on_table=classes.add)
    return files, kanon.write_disclosure_report(classes, staging, spec.pseudonym_form)
