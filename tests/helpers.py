"""Test helpers written independently of the package: ids, pseudonyms, sources, specs."""

from __future__ import annotations

import copy
import hashlib
import hmac
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from kuhr_pipeline.staging import Staging

W1 = (3, 7, 6, 1, 8, 9, 4, 5, 2)
W2 = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)


def fnr(first_nine: str, k1_remainder: int = 0) -> str:
    """A valid id from nine digits by the contract's rules (tries k1 remainder 0 or the given one)."""
    d = [int(c) for c in first_nine]
    k1 = (k1_remainder - sum(w * x for w, x in zip(W1, d, strict=True))) % 11
    assert k1 != 10, "pick other digits"
    k2 = (-sum(w * x for w, x in zip(W2, [*d, k1], strict=True))) % 11
    assert k2 != 10, "pick other digits"
    return f"{first_nine}{k1}{k2}"


def person_id(n: int, *, d_number: bool = False, h_number: bool = False) -> str:
    """The n-th distinct valid id born 1 Jan 1990 + n days (individual number searched for validity)."""
    day, month = (n % 28) + 1, (n // 28) % 12 + 1
    if d_number:
        day += 40
    if h_number:
        month += 40
    for individual in range(100 + n % 300, 500):
        nine = f"{day:02d}{month:02d}90{individual:03d}"
        try:
            return fnr(nine)
        except AssertionError:
            continue
    raise AssertionError("no id")


def hkdf_sha256(ikm: bytes, salt: bytes, info: bytes, length: int = 32) -> bytes:
    """RFC 5869 by hand, so the test does not reuse the package's key derivation."""
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


def pseudonym(master: bytes, domain: str, identifier: str) -> str:
    key = hkdf_sha256(master, b"kuhr-pipeline/pseudonym/v1", domain.encode())
    return hmac.new(key, identifier.encode(), hashlib.sha256).hexdigest()[:32]


SOURCE_DEFAULTS: dict[str, Any] = {
    "pasient_kjonn": 2,
    "pasient_fodselsar": 1990,
    "pasient_alder": 30,
    "pasient_bostedskommune": "0301",
    "behandler_id": "1000001",
    "behandler_praksistype": "FALE",
    "behandler_spesialitet": "allmennmedisin",
    "behandler_praksiskommune": "0301",
    "takstkoder": ["2ad"],
    "diagnosekodeverk": "ICPC-2",
    "diagnosekoder": ["A04"],
    "fritaksgrunn": None,
    "egenandel": 170.0,
    "refusjon": 15.0,
    "regning_status": "godkjent",
    "avvisningsgrunn": None,
}


SOURCE_ORDERS = ["person order", "time order"]


def in_order(order: str, rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int | None]:
    """Hand-built rows (a person's claims listed together) and the row group size to write them
    with, in one of SOURCE_ORDERS. "time order" is as the register exports: by time over row
    groups of three claims, a person's claims apart, and claims of one second in the reverse of
    their listed order, so that no tie is broken by the file's order. Every row keeps the claim
    id it has as listed."""
    if order == "person order":
        return rows, None
    numbered = [{"regning_id": f"R{i:06d}", **row} for i, row in enumerate(rows)]

    def moment(item: tuple[int, dict[str, Any]]) -> tuple[datetime, int]:
        when = item[1]["when"]
        return (when if isinstance(when, datetime) else datetime.fromisoformat(when)), -item[0]

    return [row for _, row in sorted(enumerate(numbered), key=moment)], 3


def write_source(folder: Path, rows: list[dict[str, Any]], row_group_size: int | None = None) -> Path:
    """A Hive-partitioned source in the contract from row dicts (`pasient_fnr` and `when` required)."""
    from kuhr_pipeline.source.schema import SOURCE_SCHEMA

    full = []
    for i, row in enumerate(rows):
        row = {**SOURCE_DEFAULTS, **row}
        when = row.pop("when")
        row["behandlingstidspunkt"] = when if isinstance(when, datetime) else datetime.fromisoformat(when)
        row.setdefault("regning_id", f"R{i:06d}")
        full.append(row)
    by_year: dict[int, list[dict[str, Any]]] = {}
    for row in full:
        by_year.setdefault(row["behandlingstidspunkt"].year, []).append(row)
    for year, year_rows in by_year.items():
        (folder / f"ar={year}").mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pylist(year_rows, schema=SOURCE_SCHEMA)
        pq.write_table(table, folder / f"ar={year}" / "part-0.parquet", row_group_size=row_group_size)
    return folder


BASE_SPEC: dict[str, Any] = {
    "application_id": "TEST-0001",
    "title": "Test application",
    "applicant": {"institution": "Test", "project_leader": "Test Leader"},
    "approval": {
        "status": "approved",
        "rek_reference": "REK 2026/1",
        "legal_basis": "helseforskningsloven § 35",
    },
    "data_level": "pseudonymised",
    "period": {"from": "2019-01-01", "to": "2020-12-31"},
    "cohort": {"entry": {"diagnoses": ["R74"]}},
    "claims": "all",
    "variables": [
        "pasient_pseudonym",
        "pasient_kjonn",
        {"name": "behandlingstidspunkt", "as": "date"},
        "diagnosekoder",
    ],
    "delivery": {
        "format": "parquet",
        "split_by": "none",
        "recipients": [{"name": "Recipient", "public_key": "recipient.pub"}],
    },
}


def _dates_to_yaml(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _dates_to_yaml(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_dates_to_yaml(v) for v in value]
    return value


def write_spec(
    folder: Path, changes: dict[str, Any] | None = None, name: str = "spec.yaml", remove: list[str] | None = None
) -> Path:
    """A spec file with dotted-path changes applied to BASE_SPEC; dates stay YAML dates. Unless the
    changes say otherwise, the approval was decided 60 days before the pipeline's today and is valid
    for four years after it, so that no test depends on the day it runs."""
    from kuhr_pipeline import clock

    spec = copy.deepcopy(BASE_SPEC)
    today = clock.today()
    spec["approval"]["decided"] = (today - timedelta(days=60)).isoformat()
    spec["approval"]["valid_until"] = today.replace(year=today.year + 4, day=min(today.day, 28)).isoformat()
    for dotted, value in (changes or {}).items():
        target = spec
        *parents, last = dotted.split(".")
        for p in parents:
            target = target.setdefault(p, {})
        target[last] = value
    for dotted in remove or []:
        target = spec
        *parents, last = dotted.split(".")
        for p in parents:
            target = target[p]
        target.pop(last)
    text = yaml.safe_dump(_dates_to_yaml(spec), allow_unicode=True, sort_keys=False)
    # safe_dump quotes ISO dates given as strings; unquote them so YAML reads dates
    import re

    text = re.sub(r"'(\d{4}-\d{2}-\d{2})'", r"\1", text)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def run_cli(args: list[str], capsys: Any) -> tuple[int, str, str]:
    """Run `kuhr-pipeline ARGS` in this process; returns (exit code, stdout, stderr)."""
    from kuhr_pipeline.cli import main

    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def released(pending: Path | str, key: Path, capsys: Any, applications: Path | None = None) -> Path:
    """Release a prepared package with a registered reviewer's key (`kuhr-pipeline release`);
    returns the released folder. `applications`: the folder of its spec (KUHR_APPLICATIONS for
    the release), when the environment does not name it."""
    import os
    from unittest import mock

    folder = {"KUHR_APPLICATIONS": str(applications)} if applications else {}
    with mock.patch.dict(os.environ, folder):
        code, out, err = run_cli(["release", pending, "--key", key], capsys)
    assert code == 0, err
    return Path(out.strip().removeprefix("released: "))


def small_application(root: Path, application_id: str, seed: int = 8) -> tuple[Path, Path]:
    """A small synthetic source (300 persons, 2019–2020) and a spec for it with its recipient key,
    in `root`; returns (source, spec). The spec file is named after the application id."""
    from crypt4gh.keys import c4gh

    from kuhr_pipeline.synth import generate_source

    source = root / "source"
    generate_source(source, persons=300, from_year=2019, to_year=2020, seed=seed)
    apps = root / "apps"
    apps.mkdir()
    c4gh.generate(str(apps / "recipient.sec"), str(apps / "recipient.pub"), passphrase=None, comment=b"recipient")
    spec = write_spec(
        apps,
        {"application_id": application_id, "cohort.entry.diagnoses": ["R74", "A04"]},
        name=f"{application_id}.yaml",
    )
    return source, spec


TEST_DATA_KEY = bytes(range(32))  # a run's data key, for steps called directly


def staging_in(folder: Path) -> Staging:
    """A staging folder sealed as a run's is, with the tests' data key."""
    return Staging(folder, TEST_DATA_KEY)


def read_staged(path: Path) -> pa.Table:
    return staging_in(path.parent).read(path)


def write_sealed_parquet(path: Path, table: pa.Table, row_group_size: int | None = None) -> Path:
    """A Parquet file sealed as staging seals it (row groups of `row_group_size` rows)."""
    staging = staging_in(path.parent)
    writer = staging.parquet_writer(staging.path(path.name), table.schema)
    try:
        for batch in table.to_batches(max_chunksize=row_group_size) if row_group_size else [table]:
            writer.write_table(pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch)
    finally:
        writer.close()
    return path
