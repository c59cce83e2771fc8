"""Running expectation suites with Great Expectations on Parquet tables, column by column.

Why this shape: GX's cost depends on the frame it is handed. Each column's expectations get a
one-column, Arrow-backed pandas frame (`types_mapper=pd.ArrowDtype`) of the column's *distinct*
values (list columns flattened first), and every result is weighted back by how often each
distinct value occurs (Arrow's `value_counts`). Codes, labels and pseudonyms repeat a lot, so GX
looks at thousands of values instead of millions of rows, and the counts it reports are the
counts over rows. Table-level expectations run on an empty frame with the full schema. Peak
memory is about two columns' distinct values (one being validated, the next being counted), not
the extract.

GX itself runs in a process of its own (gx_process.py, started early so its import overlaps other
work). Results keep counts only: GX's sample values (`partial_unexpected_list` and friends) never
leave that process, since a failing value could be an identifier.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from kuhr_pipeline.quality import gx_process
from kuhr_pipeline.quality.suites import Expectation
from kuhr_pipeline.reducing import Reducing
from kuhr_pipeline.source.scan import BATCH_ROWS, parquet_leaves
from kuhr_pipeline.staging import Staging

TABLE = "(table)"


@dataclass
class ExpectationOutcome:
    type: str
    column: str
    success: bool = True
    element_count: int = 0
    unexpected_count: int = 0
    exception: str | None = None

    @property
    def unexpected_percent(self) -> float:
        return 100.0 * self.unexpected_count / self.element_count if self.element_count else 0.0


@dataclass
class ValidationReport:
    suite: str
    outcomes: list[ExpectationOutcome] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return all(o.success for o in self.outcomes)

    @property
    def failed(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success]

    def markdown(self) -> str:
        lines = ["| expectation | column | success | unexpected count | unexpected % |", "|---|---|---|---:|---:|"]
        for o in self.outcomes:
            lines.append(
                f"| {o.type} | {o.column} | {'✅' if o.success else '❌'} | {o.unexpected_count} | "
                f"{o.unexpected_percent:.2f} |"
            )
        return "\n".join(lines)

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> ValidationReport:
        """The report `to_json` gave."""
        outcomes = [
            ExpectationOutcome(
                r["expectation"],
                r["column"],
                r["success"],
                r["element_count"],
                r["unexpected_count"],
                r.get("exception"),
            )
            for r in body["results"]
        ]
        return cls(body["suite"], outcomes)

    def to_json(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "success": self.success,
            "results": [
                {
                    "expectation": o.type,
                    "column": o.column,
                    "success": o.success,
                    "element_count": o.element_count,
                    "unexpected_count": o.unexpected_count,
                    "unexpected_percent": round(o.unexpected_percent, 4),
                    **({"exception": o.exception} if o.exception else {}),
                }
                for o in self.outcomes
            ],
        }


def _distinct(name: str, value_type: pa.DataType, chunks: Iterable[pa.Array]) -> tuple[pd.DataFrame, np.ndarray]:
    """A column (lists flattened) as its distinct values in an Arrow-backed frame, and how many
    rows hold each. Counted chunk by chunk, so a column is never held whole."""
    counts = Reducing(_merge_counts)
    for values in chunks:
        counts.add(_value_counts(values))
    merged = counts.result(_value_counts(pa.array([], value_type)))
    return pd.DataFrame({name: merged.column("values").to_pandas(types_mapper=pd.ArrowDtype)}), merged.column(
        "counts"
    ).to_numpy()


def _value_counts(values: pa.Array) -> pa.Table:
    """Each distinct value of a chunk (lists flattened) and its number of rows; nulls count as one value."""
    if pa.types.is_list(values.type) or pa.types.is_large_list(values.type):
        values = pc.list_flatten(values)
    if pa.types.is_date(values.type):
        # GX 1.24 misjudges not-null on Arrow-backed dates (fails with 0 unexpected): compare as timestamps
        values = pc.cast(values, pa.timestamp("ms"))
    counted = pc.value_counts(values)  # on a dictionary: counts its indices, no string is hashed
    distinct = counted.field("values")
    if pa.types.is_dictionary(distinct.type):
        distinct = pc.cast(distinct, distinct.type.value_type)
    return pa.table({"values": distinct, "counts": counted.field("counts")})


def _merge_counts(counted: pa.Table) -> pa.Table:
    summed = counted.group_by("values").aggregate([("counts", "sum")])
    return pa.table({"values": summed.column("values"), "counts": summed.column("counts_sum")})


def validate_tables(
    suite: str, files: list[Path], expectations: list[Expectation], staging: Staging
) -> ValidationReport:
    """Validate the sealed files (one table, possibly split by year), one column at a time, batch by batch.

    Strings (lists of strings too) are read dictionary-encoded, as Parquet stores them: counting a
    column's values then counts small integers."""
    with staging.parquet_file(files[0]) as first:
        schema = first.schema_arrow
        as_dictionary = sorted(_string_leaves(schema).intersection(c.path for c in first.schema))

    def column_values(column: str) -> Iterator[pa.Array]:
        for path in files:
            with staging.parquet_file(path, read_dictionary=as_dictionary) as parquet:
                for group in range(parquet.num_row_groups):  # one dictionary each: lists of codes need that
                    for batch in parquet.iter_batches(batch_size=BATCH_ROWS, row_groups=[group], columns=[column]):
                        yield batch.column(0)

    return _validate(suite, schema, column_values, expectations)


def _string_leaves(schema: pa.Schema) -> set[str]:
    """The Parquet columns holding strings: string columns, and lists of strings' elements."""
    return {leaf for column in schema if _holds_strings(column.type) for leaf in parquet_leaves(column.name)}


def _holds_strings(kind: pa.DataType) -> bool:
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        kind = kind.value_type
    return pa.types.is_string(kind)


def validate_table(suite: str, table: pa.Table, expectations: list[Expectation]) -> ValidationReport:
    """Validate a table held in memory (a bounded sample)."""
    return _validate(suite, table.schema, lambda c: table.column(c).chunks, expectations)


def _validate(
    suite: str,
    schema: pa.Schema,
    column_values: Callable[[str], Iterable[pa.Array]],
    expectations: list[Expectation],
) -> ValidationReport:
    by_column: dict[str, list[int]] = defaultdict(list)
    for i, e in enumerate(expectations):
        by_column[e["kwargs"].get("column", TABLE)].append(i)
    outcomes = [ExpectationOutcome(e["type"], e["kwargs"].get("column", TABLE)) for e in expectations]
    asked: list[list[int]] = []  # the expectations of each request sent to GX, in order

    def requests() -> Iterator[gx_process.Request]:
        """One request per column; each column's values are counted while GX validates the one before."""
        for column, indices in by_column.items():
            if column == TABLE:
                frame = schema.empty_table().to_pandas(types_mapper=pd.ArrowDtype)
                weights = np.zeros(0, dtype=np.int64)
            elif column not in schema.names:
                for i in indices:
                    outcomes[i].success = False
                    outcomes[i].exception = "column is not in the table"
                continue
            else:
                frame, weights = _distinct(column, schema.field(column).type, column_values(column))
            asked.append(indices)
            yield frame, weights, [expectations[i] for i in indices]

    with closing(gx_process.run_all(requests())) as replies:
        for k, results in enumerate(replies):
            for i, result in zip(asked[k], results, strict=True):
                o = outcomes[i]
                o.success = result["success"]
                o.element_count = result["element_count"]
                o.unexpected_count = result["unexpected_count"]
                o.exception = result["exception"]
    return ValidationReport(suite, outcomes)
