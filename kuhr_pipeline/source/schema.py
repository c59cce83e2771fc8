"""The source contract's columns and Arrow types (see docs/contracts/source-schema.md)."""

from __future__ import annotations

import pyarrow as pa

PARTITION_COLUMN = "ar"
PARTITIONING = pa.schema([pa.field(PARTITION_COLUMN, pa.int16())])

SOURCE_SCHEMA = pa.schema(
    [
        pa.field("regning_id", pa.string(), nullable=False),
        pa.field("pasient_fnr", pa.string()),
        pa.field("pasient_kjonn", pa.int8(), nullable=False),
        pa.field("pasient_fodselsar", pa.int16()),
        pa.field("pasient_alder", pa.int16()),
        pa.field("pasient_bostedskommune", pa.string()),
        pa.field("behandler_id", pa.string(), nullable=False),
        pa.field("behandler_praksistype", pa.string(), nullable=False),
        pa.field("behandler_spesialitet", pa.string()),
        pa.field("behandler_praksiskommune", pa.string(), nullable=False),
        pa.field("behandlingstidspunkt", pa.timestamp("ms"), nullable=False),
        pa.field("takstkoder", pa.list_(pa.string()), nullable=False),
        pa.field("diagnosekodeverk", pa.string()),
        pa.field("diagnosekoder", pa.list_(pa.string()), nullable=False),
        pa.field("fritaksgrunn", pa.string()),
        pa.field("egenandel", pa.float64(), nullable=False),
        pa.field("refusjon", pa.float64(), nullable=False),
        pa.field("regning_status", pa.string(), nullable=False),
        pa.field("avvisningsgrunn", pa.string()),
    ]
)

FILE_COLUMNS = SOURCE_SCHEMA.names

# Columns of codes from short lists (strings, or lists of them): cheaper to read dictionary-encoded.
CODE_COLUMNS = frozenset(
    {
        "diagnosekoder",
        "takstkoder",
        "pasient_bostedskommune",
        "behandler_praksistype",
        "behandler_spesialitet",
        "behandler_praksiskommune",
        "diagnosekodeverk",
        "fritaksgrunn",
        "regning_status",
        "avvisningsgrunn",
    }
)


def type_matches(expected: pa.DataType, actual: pa.DataType) -> bool:
    """Equal types, with the contract's latitude: timestamps of ms or finer without a zone,
    string/large_string and list/large_list alike."""
    if pa.types.is_timestamp(expected):
        return pa.types.is_timestamp(actual) and actual.unit in ("ms", "us", "ns") and actual.tz is None
    if pa.types.is_string(expected):
        return pa.types.is_string(actual) or pa.types.is_large_string(actual)
    if pa.types.is_list(expected):
        return (pa.types.is_list(actual) or pa.types.is_large_list(actual)) and type_matches(
            expected.value_type, actual.value_type
        )
    return bool(expected.equals(actual))
