"""The floor read the way deliver reads: the same scan and write as floor.py, but without the
timestamp comparison (every row group of the benchmark source lies inside the period, which
deliver learns from the row groups' statistics) and with the code columns read
dictionary-encoded and decoded for the kept rows only. Reported beside the floor, so the ratio
to deliver is not flattered by reading tricks the floor lacks."""

from __future__ import annotations

import sys

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from floor import COLUMNS

CODES = {"pasient_bostedskommune", "behandler_praksistype", "fritaksgrunn"}


def main(source: str, cohort_file: str, out: str) -> None:
    cohort = pa.array(open(cohort_file).read().split(), pa.string())
    fmt = ds.ParquetFileFormat(read_options=ds.ParquetReadOptions(dictionary_columns=CODES))
    dataset = ds.dataset(source, format=fmt, partitioning="hive")
    writer = None
    for batch in dataset.scanner(columns=COLUMNS, filter=(ds.field("ar") >= 2019) & (ds.field("ar") <= 2024),
                                 batch_size=256 * 1024, batch_readahead=2, fragment_readahead=1).to_batches():
        kept = batch.filter(pc.is_in(batch.column("pasient_fnr"), value_set=cohort))
        kept = pa.record_batch([pc.cast(c, c.type.value_type) if pa.types.is_dictionary(c.type) else c
                                for c in kept.columns], names=kept.schema.names)
        if writer is None:
            writer = pq.ParquetWriter(out, kept.schema, compression="zstd")
        writer.write_batch(kept)
    if writer is not None:
        writer.close()


if __name__ == "__main__":
    main(*sys.argv[1:4])
