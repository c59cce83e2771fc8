"""The floor: one pyarrow scan of exactly the columns the extract needs over the period, and one
write of the kept rows. The cohort's ids are given (found beforehand, not timed), so this is the
least any implementation must do: read those columns once, write the result once.

With `--as-deliver-reads` the scan uses deliver's reading tricks as well: no timestamp
comparison (every row group of the benchmark source lies inside the period, which deliver learns
from the row groups' statistics), the code columns (lists of codes too) read dictionary-encoded and
decoded for the kept rows only (the ids are read plain, as deliver reads them: in a source in time
order a batch's dictionary of ids is nearly as long as the batch). Reported beside the floor, so the ratio to deliver is not flattered by them."""

from __future__ import annotations

import sys
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

COLUMNS = ["pasient_fnr", "pasient_kjonn", "pasient_alder", "pasient_bostedskommune", "behandlingstidspunkt",
           "behandler_praksistype", "diagnosekoder", "takstkoder", "fritaksgrunn", "egenandel", "refusjon"]
CODES = {"pasient_bostedskommune", "behandler_praksistype", "fritaksgrunn",
         "diagnosekoder.list.element", "takstkoder.list.element"}


def in_cohort(ids: pa.Array, cohort: pa.Array) -> pa.Array:
    if pa.types.is_dictionary(ids.type):  # each distinct id looked up once
        return pc.fill_null(pc.take(pc.is_in(ids.dictionary, value_set=cohort), ids.indices), False)
    return pc.is_in(ids, value_set=cohort)


def decoded(column: pa.Array) -> pa.Array:
    if pa.types.is_dictionary(column.type):
        return pc.cast(column, column.type.value_type)
    if pa.types.is_list(column.type) and pa.types.is_dictionary(column.type.value_type):
        return pc.cast(column, pa.list_(column.type.value_type.value_type))
    return column


def main(source: str, cohort_file: str, out: str, as_deliver_reads: bool) -> None:
    cohort = pa.array(open(cohort_file).read().split(), pa.string())
    years = (ds.field("ar") >= 2019) & (ds.field("ar") <= 2024)
    if as_deliver_reads:
        file_format = ds.ParquetFileFormat(read_options=ds.ParquetReadOptions(dictionary_columns=CODES))
        period = years
    else:
        file_format = ds.ParquetFileFormat()
        period = (years & (ds.field("behandlingstidspunkt") >= pa.scalar(datetime(2019, 1, 1), pa.timestamp("ms")))
                  & (ds.field("behandlingstidspunkt") < pa.scalar(datetime(2025, 1, 1), pa.timestamp("ms"))))
    dataset = ds.dataset(source, format=file_format, partitioning="hive")
    writer = None
    for batch in dataset.scanner(columns=COLUMNS, filter=period, batch_size=256 * 1024, batch_readahead=2,
                                 fragment_readahead=1).to_batches():
        kept = batch.filter(in_cohort(batch.column("pasient_fnr"), cohort))
        kept = pa.record_batch([decoded(c) for c in kept.columns], names=kept.schema.names)
        if writer is None:
            writer = pq.ParquetWriter(out, kept.schema, compression="zstd")
        writer.write_batch(kept)
    if writer is not None:
        writer.close()


if __name__ == "__main__":
    main(*sys.argv[1:4], as_deliver_reads="--as-deliver-reads" in sys.argv[4:])
