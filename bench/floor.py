"""The floor: one pyarrow scan of exactly the columns the extract needs over the period, and one
write of the kept rows. The cohort's ids are given (found beforehand, not timed), so this is the
least any implementation must do: read those columns once, write the result once."""

from __future__ import annotations

import sys
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

COLUMNS = ["pasient_fnr", "pasient_kjonn", "pasient_alder", "pasient_bostedskommune", "behandlingstidspunkt",
           "behandler_praksistype", "diagnosekoder", "takstkoder", "fritaksgrunn", "egenandel", "refusjon"]


def main(source: str, cohort_file: str, out: str) -> None:
    cohort = pa.array(open(cohort_file).read().split(), pa.string())
    dataset = ds.dataset(source, format="parquet", partitioning="hive")
    period = ((ds.field("ar") >= 2019) & (ds.field("ar") <= 2024)
              & (ds.field("behandlingstidspunkt") >= pa.scalar(datetime(2019, 1, 1), pa.timestamp("ms")))
              & (ds.field("behandlingstidspunkt") < pa.scalar(datetime(2025, 1, 1), pa.timestamp("ms"))))
    writer = None
    for batch in dataset.scanner(columns=COLUMNS, filter=period, batch_size=256 * 1024, batch_readahead=2,
                                 fragment_readahead=1).to_batches():
        kept = batch.filter(pc.is_in(batch.column("pasient_fnr"), value_set=cohort))
        if writer is None:
            writer = pq.ParquetWriter(out, kept.schema, compression="zstd")
        writer.write_batch(kept)
    if writer is not None:
        writer.close()


if __name__ == "__main__":
    main(*sys.argv[1:4])
