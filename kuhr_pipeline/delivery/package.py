"""What goes into a delivery, gathered from the staged results, then published."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kuhr_pipeline.application import LoadedSpec
from kuhr_pipeline.application.load import canonical_body
from kuhr_pipeline.cohort import CohortClaims
from kuhr_pipeline.delivery.publish import DataTable, DeliveryContents, Provenance, PublishedDelivery, publish_delivery
from kuhr_pipeline.disclosure import DISCLOSURE_REPORT
from kuhr_pipeline.disclosure.patterns import keep_pattern
from kuhr_pipeline.disclosure.statistics import StatisticsTable
from kuhr_pipeline.errors import DeliveryError
from kuhr_pipeline.extract.build import ExtractFiles
from kuhr_pipeline.quality.gate import passed_report
from kuhr_pipeline.staging import Staging


def assemble_and_publish(
    application: LoadedSpec,
    cohort: CohortClaims,
    made: ExtractFiles | StatisticsTable,
    deliveries_root: Path,
    staging: Staging,
    signing_key: Ed25519PrivateKey,
    on_step: Callable[[str], None] | None = None,
    synthetic: bool = False,
    still_wanted: Callable[[], bool] = lambda: True,
    provenance: Provenance | None = None,
    pseudonyms: dict[str, str] | None = None,
) -> PublishedDelivery:
    """`made`: the extract of a person-level application, or the statistics table of a statistics
    one. Only what passed validation goes in: the gate raises DeliveryError otherwise. `synthetic`:
    a dummy delivery (kuhr_pipeline.dummy), said so in the manifest and README. `still_wanted`:
    see publish_delivery."""
    spec = application.spec
    approved = ExtractFiles if spec.data_level == "pseudonymised" else StatisticsTable
    if not isinstance(made, approved):  # exactly what was approved: never the other data level's table
        raise DeliveryError.single(
            str(application.path), "data_level", f"is {spec.data_level}, but a {type(made).__name__} was made"
        )
    tables: list[DataTable] = []
    documents: dict[str, bytes] = {}
    if isinstance(made, ExtractFiles):
        report = passed_report(staging.folder, "claims", [path for _, path in made.tables()])
        tables += [DataTable(name, path, made.files[name][1]) for name, path in made.tables()]
        schema = made.schema
    else:
        report = passed_report(staging.folder, "statistics", [made.path])
        tables.append(DataTable("statistics", made.path, made.rows))
        schema = staging.parquet_schema(made.path)
    disclosure = staging.folder / DISCLOSURE_REPORT
    if disclosure.exists():
        documents[DISCLOSURE_REPORT] = disclosure.read_bytes()
    documents["validation_summary.json"] = json.dumps(report, indent=2).encode("utf-8")
    attrition_path = staging.path("attrition.parquet")
    attrition = cohort.attrition.table()
    staging.write_parquet(attrition_path, attrition)
    tables.append(DataTable("attrition", attrition_path, attrition.num_rows))
    contents = DeliveryContents(
        spec=spec,
        spec_sha256=application.sha256,
        recipient_keys=application.recipient_keys,
        tables=tables,
        documents=documents,
        codebook_columns=spec.plan.pairs,
        codebook_schema=schema,
        synthetic=synthetic,
        provenance=provenance,
        canonical_spec=b"" if synthetic else canonical_yaml(application),
        pseudonyms=pseudonyms or {},
    )
    published = publish_delivery(contents, deliveries_root, staging, signing_key, on_step, still_wanted)
    if isinstance(made, StatisticsTable) and not synthetic:  # the next release keeps these cells hidden
        keep_pattern(deliveries_root, spec.application_id, list(made.dimensions), staging.read_parquet(made.path))
    return published


def canonical_yaml(application: LoadedSpec) -> bytes:
    """The spec as its canonical hash sees it (parsed spec, recipients' key hashes), as YAML."""
    body = canonical_body(application.spec, application.recipient_keys, application.population_sha256)
    header = f"# canonical spec of {application.application_id}, sha256 {application.sha256}\n"
    return (header + yaml.safe_dump(body, sort_keys=True, allow_unicode=True)).encode("utf-8")
