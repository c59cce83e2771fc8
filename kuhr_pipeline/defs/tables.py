"""Dagster table metadata from the pipeline's rows of text: tables the UI draws with typed,
described columns (descriptions of delivered columns come from the catalogue)."""

from __future__ import annotations

import dagster as dg
import pyarrow as pa

from kuhr_pipeline.application import ApplicationSpec
from kuhr_pipeline.catalogue import load_catalogue


def row_count(rows: int, shown: str) -> dict[str, int | str]:
    """Dagster's row count when the count as it may be shown (`shown`: masked when small,
    rounded for statistics) is the count itself; else that text only."""
    return {"dagster/row_count": rows} if shown == str(rows) else {"rows": shown}


def described(columns: list[tuple[str, str]]) -> dict[str, str]:
    """Each delivered column's catalogue description, with the generalisation it was delivered in."""
    catalogue = load_catalogue()
    return {name: f"{catalogue.variable(name).en} ({how})" for name, how in columns}


def statistics_descriptions(spec: ApplicationSpec) -> dict[str, str]:
    """The statistics table's columns: its dimensions, its measures, and `suppressed`."""
    catalogue = load_catalogue()
    measures = spec.statistics.measures if spec.statistics else []
    return {
        **described(spec.plan.pairs),
        **{m: catalogue.measures[m].en for m in measures},
        "suppressed": "true where the row's measures are hidden (see the codebook)",
    }


def text_table(
    columns: list[str], rows: list[dict[str, str]], descriptions: dict[str, str] | None = None
) -> dg.TableMetadataValue:
    schema = dg.TableSchema(
        columns=[dg.TableColumn(c, "string", description=(descriptions or {}).get(c)) for c in columns]
    )
    return dg.MetadataValue.table(
        records=[dg.TableRecord({c: row.get(c, "") for c in columns}) for row in rows], schema=schema
    )


def arrow_table(table: pa.Table, descriptions: dict[str, str] | None = None) -> dg.TableMetadataValue:
    """A small pyarrow table (attrition, report figures) with every value as text."""
    rows = [{k: "" if v is None else str(v) for k, v in row.items()} for row in table.to_pylist()]
    return text_table(table.column_names, rows, descriptions)


def column_schema(schema: pa.Schema, descriptions: dict[str, str]) -> dg.TableSchema:
    """The delivered columns, their Arrow types and catalogue descriptions (`dagster/column_schema`)."""
    return dg.TableSchema(
        columns=[dg.TableColumn(f.name, str(f.type), description=descriptions.get(f.name)) for f in schema]
    )


def counts_table(counts: dict[str, str], label: str) -> dg.TableMetadataValue:
    return text_table([label, "count"], [{label: k, "count": v} for k, v in counts.items()])
