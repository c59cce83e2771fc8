"""What goes into a delivery, gathered from the staged results, then published."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kuhr_pipeline.cohort import CohortClaims
from kuhr_pipeline.delivery.publish import DataTable, DeliveryContents, PublishedDelivery, publish_delivery
from kuhr_pipeline.extract.build import ExtractFiles, resolved
from kuhr_pipeline.quality.gate import passed_report
from kuhr_pipeline.spec import LoadedSpec


def assemble_and_publish(
    application: LoadedSpec,
    cohort: CohortClaims,
    extract: ExtractFiles,
    deliveries_root: Path,
    work_dir: Path,
    signing_key: Ed25519PrivateKey,
    on_step: Callable[[str], None] | None = None,
    extra_tables: list[DataTable] | None = None,
    extra_documents: dict[str, bytes] | None = None,
) -> PublishedDelivery:
    spec = application.spec
    tables: list[DataTable] = []
    documents: dict[str, bytes] = dict(extra_documents or {})
    if spec.data_level == "pseudonymised":
        files = [path for _, path in extract.tables()]
        report = passed_report(work_dir, "claims", files)
        tables += [DataTable(name, path, extract.files[name][1]) for name, path in extract.tables()]
        documents["validation_summary.json"] = json.dumps(report, indent=2).encode("utf-8")
        columns = resolved(spec.requested_variables())
    else:
        columns = resolved(spec.requested_group_by())
    attrition_path = work_dir / "attrition.parquet"
    attrition = cohort.attrition.table()
    pq.write_table(attrition, attrition_path)
    tables.append(DataTable("attrition", attrition_path, attrition.num_rows))
    tables += extra_tables or []
    contents = DeliveryContents(
        spec=spec,
        spec_sha256=application.sha256,
        recipient_keys=application.recipient_keys,
        tables=tables,
        documents=documents,
        codebook_columns=columns,
        codebook_schema=extract.schema if spec.data_level == "pseudonymised" else None,
    )
    return publish_delivery(contents, deliveries_root, work_dir, signing_key, on_step=on_step)
