"""A dummy delivery: the exact shape of a spec's real delivery, filled with synthetic persons.

For researchers to write and test their code before approval, without a real person in it. The
dummy persons (`source.py`) go through the same cohort selection, extract or statistics,
validation and publishing as a real delivery, under a pseudonym key made for the dummy alone
(never the master key), and the package says `synthetic: true` in its manifest and README. It
reads nothing of the register, so it is no disclosure and leaves no line in the register's
audit log (the `--out` folder keeps its own).
"""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kuhr_pipeline import clock
from kuhr_pipeline.application import load_spec
from kuhr_pipeline.application.model import ApplicationSpec
from kuhr_pipeline.cohort import CohortClaims, select_cohort
from kuhr_pipeline.delivery.package import assemble_and_publish
from kuhr_pipeline.delivery.publish import PublishedDelivery
from kuhr_pipeline.disclosure.statistics import StatisticsTable, build_statistics, keep_disclosure_report
from kuhr_pipeline.dummy.source import write_dummy_source
from kuhr_pipeline.extract.build import ExtractFiles, build_extract_with_report
from kuhr_pipeline.identity.fodselsnummer import check_ids
from kuhr_pipeline.identity.population import Population
from kuhr_pipeline.quality.gate import record_report
from kuhr_pipeline.quality.statistics_rules import validate_statistics
from kuhr_pipeline.quality.suites import claims_suite, map_expectations
from kuhr_pipeline.quality.validate import validate_tables
from kuhr_pipeline.source import open_source
from kuhr_pipeline.staging import Staging

DEFAULT_PERSONS = 200


def deliver_dummy(
    spec_path: Path,
    out: Path,
    signing_key: Ed25519PrivateKey,
    persons: int = DEFAULT_PERSONS,
    seed: int = 1,
    on_step: Callable[[str], None] | None = None,
) -> PublishedDelivery:
    """Check the spec (a draft passes), make dummy persons, and publish their delivery under `out`."""
    report = on_step or (lambda _: None)
    loaded = load_spec(spec_path, draft=True)
    spec = loaded.spec
    key = secrets.token_bytes(32)  # the dummy's own: its pseudonyms match no real delivery's
    with tempfile.TemporaryDirectory(prefix="kuhr-dummy-") as folder:
        source = write_dummy_source(spec, str(spec_path), Path(folder) / "source", persons, seed, clock.today())
        report(f"dummy: {source.persons} synthetic persons, {source.claims} claims")
        staging = Staging.for_run(Path(folder) / "staging", key, "dummy")
        population = _dummy_population(source.path, spec.pseudonym_form == "lopenr") if spec.population else None
        claims = select_cohort(open_source(source.path), spec, key, staging, population=population)
        made = _made(spec, claims, staging)
        return assemble_and_publish(loaded, claims, made, out, staging, signing_key, on_step=report, synthetic=True)


def _dummy_population(source: Path, with_lopenr: bool) -> Population:
    """The dummy persons as the spec's population (the real file lists real persons, who are not
    among the dummies), with made-up løpenumre when the spec delivers løpenumre."""
    ids = check_ids(ds.dataset(source, partitioning="hive").to_table(columns=["pasient_fnr"]).column(0))
    numbers = np.unique(ids.number[ids.valid])
    lopenr = pa.array([f"DUMMY{i:07d}" for i in range(len(numbers))]) if with_lopenr else None
    return Population(numbers=numbers, lopenr=lopenr, rows=len(numbers), not_used=0)


def _made(spec: ApplicationSpec, claims: CohortClaims, staging: Staging) -> ExtractFiles | StatisticsTable:
    """The extract or the statistics table, validated as the delivery's blocking checks do."""
    if spec.data_level == "pseudonymised":
        extract, _ = build_extract_with_report(spec, claims.path, staging)
        files = [path for _, path in extract.tables()]
        record_report(staging, validate_tables("claims", files, claims_suite(spec, spec.plan.pairs), staging), files)
        return extract
    statistics = build_statistics(spec, claims.path, staging, staging.sub("statistics"))
    validation, proof = validate_statistics(statistics, staging, map_expectations(spec, spec.plan.pairs))
    record_report(staging, validation, [statistics.path])
    keep_disclosure_report(statistics, proof, staging)
    return statistics
