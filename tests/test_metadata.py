"""Metadata and logs hold counts and the shape of a table, never its rows: after a person-level
delivery with free text, no delivered pseudonym and no free text is anywhere in the instance
(event log, run storage, compute logs) or in the command's output."""

from __future__ import annotations

import json
import re
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq

from tests.helpers import released, run_cli, small_application, write_spec
from tests.leakscan import decoded

APP = "META-1"


def _instance_bytes(home: Path) -> list[bytes]:
    return [
        layer
        for path in home.rglob("*")
        if path.is_file() and not path.is_symlink()
        for layer in decoded(path.read_bytes())
    ]


def test_no_row_of_the_extract_reaches_metadata_logs_or_output(tmp_path, keys_env, capsys) -> None:
    source, spec = small_application(tmp_path, APP, seed=31)
    spec = write_spec(
        spec.parent,
        {
            "application_id": APP,
            "cohort.entry.diagnoses": ["R74", "A04"],
            "variables": [
                "pasient_pseudonym",
                {"name": "behandlingstidspunkt", "as": "date"},
                {"name": "avvisningsgrunn", "free_text": "approved"},
            ],
        },
        name=f"{APP}.yaml",
    )
    code, out, err = run_cli(["deliver", spec, "--source", source], capsys)
    assert code == 0, err
    target = released(out.strip(), keys_env["anna"], capsys, spec.parent)
    sk = spec.parent / "recipient.sec"
    decrypted = tmp_path / "plain"
    assert run_cli(["decrypt", target, "--sk", sk, "--out", decrypted], capsys)[0] == 0
    claims = pq.read_table(next(decrypted.glob("claims*.parquet")))
    pseudonyms = set(claims.column("pasient_pseudonym").to_pylist())
    texts = {t for t in claims.column("avvisningsgrunn").to_pylist() if t and len(t) >= 8}
    assert pseudonyms and texts  # the test has something to look for

    with dg.DagsterInstance.get() as instance:
        (record,) = instance.fetch_materializations(dg.AssetKey("extract"), limit=1).records
        metadata = record.asset_materialization.metadata
    assert "preview" not in metadata and "dagster/column_schema" in metadata
    layers = _instance_bytes(keys_env["home"])
    everything = b"\n".join(layers) + (out + err).encode()
    found = [p for p in pseudonyms if p.encode() in everything]
    found += [t for t in texts if t.encode("utf-8") in everything]
    assert found == [], found[:3]


def test_a_statistics_run_shows_rounded_counts_only(tmp_path, keys_env, capsys) -> None:
    source, spec = small_application(tmp_path, "META-2", seed=32)
    spec = write_spec(
        spec.parent,
        {
            "application_id": "META-2",
            "data_level": "statistics",
            "cohort.entry.diagnoses": ["R74", "A04"],
            "statistics": {"group_by": ["pasient_kjonn"], "measures": ["persons", "claims"], "min_cell": 5},
        },
        name="META-2.yaml",
        remove=["variables"],
    )
    code, out, err = run_cli(["deliver", spec, "--source", source, "--json"], capsys)
    assert code == 0, err
    shown = json.loads(out)
    assert int(shown["claims"]) % 5 == 0 and int(shown["persons"]) % 5 == 0
    with dg.DagsterInstance.get() as instance:
        (record,) = instance.fetch_materializations(dg.AssetKey("cohort"), limit=1).records
        metadata = record.asset_materialization.metadata
    claims = metadata["claims"].value
    assert int(str(claims)) % 5 == 0
    row_count = metadata.get("dagster/row_count")
    assert row_count is None or int(str(row_count.value)) % 5 == 0  # never the exact count beside a rounded one
    assert re.fullmatch(r"\d+", str(claims))


def test_a_cohort_below_the_threshold_gets_an_advisory(tmp_path, keys_env, capsys) -> None:
    from tests.conftest import make_recipient
    from tests.helpers import person_id, write_source

    rows = [
        {"pasient_fnr": person_id(k), "when": f"2020-0{k}-10T10:00:00", "diagnosekoder": ["R74"]} for k in range(1, 4)
    ]
    source = write_source(tmp_path / "source", rows)
    apps = tmp_path / "apps"
    apps.mkdir()
    make_recipient(apps, "recipient")
    spec = write_spec(apps, {"application_id": "TINY-1", "period": {"from": "2020-01-01", "to": "2020-12-31"}})
    code, out, err = run_cli(["deliver", spec, "--source", source], capsys)
    assert code == 0, err
    assert "advisory: the cohort has <5 persons: a person-level delivery this small is legal but rarely meant" in err
    with dg.DagsterInstance.get() as instance:
        (record,) = instance.fetch_materializations(dg.AssetKey("delivery"), limit=1).records
    assert "rarely meant" in str(record.asset_materialization.metadata["advisory"].value)
