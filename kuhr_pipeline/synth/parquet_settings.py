"""How the synthetic source's Parquet files are written, in either order."""

from __future__ import annotations

import pyarrow as pa

# Nearly one value per claim: a dictionary would only be built to be thrown away (Parquet falls back to
# plain encoding once it grows past a page), which cost a fifth of the writing.
_NO_DICTIONARY = {"regning_id", "pasient_fnr", "behandlingstidspunkt"}


def parquet_options(schema: pa.Schema) -> dict[str, object]:
    """The source's writer settings: snappy, and a dictionary for every column that repeats."""
    # A list's values are the Parquet column `name.list.element`: naming the list itself would
    # leave its codes without a dictionary.
    dictionary = [
        f"{field.name}.list.element" if pa.types.is_list(field.type) else field.name
        for field in schema
        if field.name not in _NO_DICTIONARY
    ]
    return {"compression": "snappy", "use_dictionary": dictionary}
