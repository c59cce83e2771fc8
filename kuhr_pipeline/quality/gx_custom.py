"""The project's custom Great Expectations expectation: no value holds a fødselsnummer.

GX has no expectation that knows check digits, so this one wraps `leak_guard` as a column map
metric. Importing this module imports GX: do it lazily (inside checks), never at definitions load.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pyarrow as pa
from great_expectations.execution_engine import PandasExecutionEngine
from great_expectations.expectations.expectation import ColumnMapExpectation
from great_expectations.expectations.metrics import ColumnMapMetricProvider, column_condition_partial

from kuhr_pipeline.quality.leak_guard import holds_fodselsnummer


class ColumnValuesHoldNoFodselsnummer(ColumnMapMetricProvider):
    condition_metric_name = "column_values.kuhr_no_fodselsnummer"

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: pd.Series, **kwargs: Any) -> pd.Series:
        values = pa.array(column.astype("string[pyarrow]"), pa.string(), from_pandas=True)
        return pd.Series(~holds_fodselsnummer(values), index=column.index)


class ExpectColumnValuesToHoldNoFodselsnummer(ColumnMapExpectation):
    """Expect no value to contain an 11-digit sequence that validates as a fødselsnummer."""

    map_metric = "column_values.kuhr_no_fodselsnummer"
    success_keys = ("mostly",)
