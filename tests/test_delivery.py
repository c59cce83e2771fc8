"""End to end: `kuhr-pipeline deliver` on a synthetic source, then the reference crypt4gh tool,
verify, decrypt, and a scan of everything persisted for the source's national ids."""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dagster import DagsterEventType, DagsterInstance

from kuhr_pipeline.identity.new_keys import init_keys
from kuhr_pipeline.synth import generate_source
from tests.conftest import make_recipient
from tests.helpers import released, run_cli, write_source, write_spec
from tests.leakscan import at_rest_problems, ids_in_source, leaked

MATERIALIZED = DagsterEventType.ASSET_MATERIALIZATION
CHECKED = DagsterEventType.ASSET_CHECK_EVALUATION

CRYPT4GH = Path(sys.executable).with_name("crypt4gh")

SPEC = {
    "application_id": "E2E-0001",
    "period": {"from": "2019-01-01", "to": "2020-12-31"},
    "cohort": {"entry": {"diagnoses": ["R74", "R78", "R80"], "praksistyper": ["FALE", "LEVA"]}},
    "variables": [
        "pasient_pseudonym",
        "pasient_kjonn",
        {"name": "pasient_alder", "as": "group10"},
        {"name": "pasient_bostedskommune", "as": "fylke"},
        {"name": "behandlingstidspunkt", "as": "month"},
        "behandler_pseudonym",
        "diagnosekoder",
        "takstkoder",
        "egenandel",
    ],
    "delivery": {
        "format": "parquet",
        "split_by": "year",
        "recipients": [{"name": "Alice", "public_key": "alice.pub"}, {"name": "Bob", "public_key": "bob.pub"}],
    },
}


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("source") / "kuhr"
    generate_source(out, persons=800, from_year=2019, to_year=2020, seed=11)
    return out


@pytest.fixture
def setup(tmp_path: Path, keys_env: dict[str, Path], source: Path) -> dict[str, Path]:
    apps = tmp_path / "applications"
    apps.mkdir()
    alice_sec, _ = make_recipient(apps, "alice")
    bob_sec, _ = make_recipient(apps, "bob")
    carol_sec, _ = make_recipient(tmp_path, "carol")
    spec = write_spec(apps, SPEC, name="E2E-0001.yaml")
    return {**keys_env, "spec": spec, "alice": alice_sec, "bob": bob_sec, "carol": carol_sec, "source": source}


def deliver(
    setup: dict[str, Path], capsys: pytest.CaptureFixture[str], source: Path | None = None, again: bool = False
) -> tuple:
    return run_cli(
        ["deliver", setup["spec"], "--source", source or setup["source"], *(["--again"] if again else [])], capsys
    )


def test_deliver_then_reference_tool_decrypts_for_each_recipient(setup, capsys, tmp_path) -> None:
    code, out, err = deliver(setup, capsys)
    assert code == 0, err
    pending = Path(out.strip())
    assert pending.parent == setup["deliveries"] / "E2E-0001" / ".pending"
    folder = released(pending, setup["anna"], capsys, setup["spec"].parent)
    assert folder.parent.parent == setup["deliveries"] and folder.parent.name == "E2E-0001"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["ran_by"] == "preparer" and manifest["trigger"] == "cli" and manifest["run_id"]
    assert f"prepared by run {manifest['run_id']}, not yet released" in err  # the run id, at the end
    assert manifest["pseudonyms"]["form"] == "hmac" and len(manifest["pseudonyms"]["key_fingerprint"]) == 32
    for key in (
        "application_id",
        "delivery_id",
        "created_at",
        "spec_sha256",
        "pipeline_version",
        "data_level",
        "period",
        "linkage_domain",
        "recipients",
        "signer_key_fingerprint",
        "files",
    ):
        assert key in manifest, key
    from kuhr_pipeline import clock

    decided = (clock.today() - timedelta(days=60)).isoformat()  # write_spec's approval
    assert manifest["approval"] == {
        "status": "approved",
        "decided": decided,
        "valid_until": manifest["approval"]["valid_until"],
        "rek_reference": "REK 2026/1",
        "legal_basis": "helseforskningsloven § 35",
        "decision_id": None,
        "approved_by": None,
    }
    readme = (folder / "README.md").read_text()
    assert f"Approval: approved on {decided}" in readme and "REK reference REK 2026/1" in readme
    data = [f for f in manifest["files"] if f["path"].endswith(".c4gh")]
    assert {f["path"] for f in data} >= {
        "data/claims_2019.parquet.c4gh",
        "data/claims_2020.parquet.c4gh",
        "data/attrition.parquet.c4gh",
        "data/validation_summary.json.c4gh",
    }
    for entry in data:
        for secret in (setup["alice"], setup["bob"]):
            with (folder / entry["path"]).open("rb") as fin:
                plain = subprocess.run(
                    [str(CRYPT4GH), "decrypt", "--sk", str(secret)], stdin=fin, capture_output=True, check=True
                ).stdout
            assert hashlib.sha256(plain).hexdigest() == entry["plaintext_sha256"]
        with (folder / entry["path"]).open("rb") as fin:
            third = subprocess.run(
                [str(CRYPT4GH), "decrypt", "--sk", str(setup["carol"])], stdin=fin, capture_output=True
            )
        assert third.returncode != 0 or hashlib.sha256(third.stdout).hexdigest() != entry["plaintext_sha256"]
    code, out, err = run_cli(["verify", folder, "--signer-pub", setup["signing_pub"]], capsys)
    assert code == 0, err
    code, out, err = run_cli(["audit", "verify"], capsys)
    assert code == 0, err


def test_decrypted_claims_have_the_spec_columns_and_staging_is_gone(setup, capsys, tmp_path) -> None:
    """What was staged between the steps is removed once the package is published (each delivered
    value is compared with the contract in test_contract_values.py)."""
    code, out, err = deliver(setup, capsys)
    assert code == 0, err
    folder = Path(out.strip())
    plain = tmp_path / "plain"
    code, _, err = run_cli(
        ["decrypt", folder, "--sk", setup["alice"], "--out", plain, "--signer-pub", setup["signing_pub"]], capsys
    )
    assert code == 0, err
    assert not (setup["home"] / "staging" / "E2E-0001").exists()
    for year in (2019, 2020):
        delivered = pq.read_table(plain / f"claims_{year}.parquet")
        assert delivered.num_rows > 0
        assert delivered.column_names == [v if isinstance(v, str) else v["name"] for v in SPEC["variables"]]
        assert set(delivered.column("behandlingstidspunkt").to_pylist()) <= {f"{year}-{m:02d}" for m in range(1, 13)}
        first_group = pq.ParquetFile(plain / f"claims_{year}.parquet").metadata.row_group(0)
        with_statistics = {
            chunk.path_in_schema: chunk.is_stats_set
            for chunk in (first_group.column(i) for i in range(first_group.num_columns))
        }
        assert with_statistics["behandlingstidspunkt"]  # readers may select months by the statistics
        assert not with_statistics["pasient_pseudonym"]  # min and max of hashes select nothing
        assert not with_statistics["diagnosekoder.list.element"]  # nor do those of codes in every row group
    attrition = pq.read_table(plain / "attrition.parquet")
    assert attrition.column_names == ["step", "persons", "bills"]
    summary = json.loads((plain / "validation_summary.json").read_text())
    assert summary["success"] is True
    assert "partial_unexpected_list" not in json.dumps(summary)


def test_two_runs_give_identical_tables(setup, capsys, tmp_path) -> None:
    tables = []
    for run in range(2):
        code, out, err = deliver(setup, capsys, again=run > 0)  # the second on purpose
        assert code == 0, err
        plain = tmp_path / f"plain{run}"
        run_cli(
            ["decrypt", out.strip(), "--sk", setup["bob"], "--out", plain, "--signer-pub", setup["signing_pub"]], capsys
        )
        tables.append(pq.read_table(plain / "claims_2019.parquet"))
    assert tables[0].equals(tables[1])


@pytest.mark.parametrize("damage", ["flip", "truncate", "remove", "extra", "manifest", "codebook", "signer"])
def test_verify_rejects_damage(setup, capsys, tmp_path, damage) -> None:
    code, out, err = deliver(setup, capsys)
    assert code == 0, err
    folder = Path(out.strip())
    signer = setup["signing_pub"]
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != "manifest.json.sig")
    if damage == "flip":
        for victim in files:  # one flipped byte in any file is caught
            original = victim.read_bytes()
            flipped = bytearray(original)
            flipped[len(flipped) // 2] ^= 0x01
            victim.write_bytes(bytes(flipped))
            code, _, err = run_cli(["verify", folder, "--signer-pub", signer], capsys)
            assert code == 1, victim
            victim.write_bytes(original)
        return
    if damage == "truncate":
        victim = folder / "data" / "claims_2019.parquet.c4gh"
        victim.write_bytes(victim.read_bytes()[:-10])
    elif damage == "remove":
        (folder / "data" / "claims_2020.parquet.c4gh").unlink()
    elif damage == "extra":
        (folder / "data" / "notes.txt").write_text("extra")
    elif damage == "manifest":
        manifest = folder / "manifest.json"
        manifest.write_text(manifest.read_text().replace('"E2E-0001"', '"E2E-0002"', 1))
    elif damage == "codebook":
        codebook = folder / "codebook.md"
        codebook.write_text(codebook.read_text() + "\nedited\n")
    elif damage == "signer":
        other = tmp_path / "other"
        init_keys(other / "m.key", other / "s.pem", None, other)
        signer = other / "s.pub"
    code, out, err = run_cli(["verify", folder, "--signer-pub", signer], capsys)
    assert code == 1 and "NOT intact" in err and "Traceback" not in err


def test_no_national_id_anywhere(setup, capsys, tmp_path) -> None:
    code, out, err = deliver(setup, capsys)
    assert code == 0, err
    plain = tmp_path / "plain"
    code, out2, err2 = run_cli(
        ["decrypt", out.strip(), "--sk", setup["alice"], "--out", plain, "--signer-pub", setup["signing_pub"]], capsys
    )
    assert code == 0
    ids = ids_in_source(setup["source"])
    assert len(ids) > 500
    found = leaked(ids, [setup["home"], setup["deliveries"], plain], [out, err, out2, err2])
    assert not found, f"{len(found)} national ids leaked"
    assert at_rest_problems(setup["home"]) == []


def test_failed_validation_stops_the_delivery(setup, capsys, tmp_path) -> None:
    from tests.helpers import person_id

    victim = person_id(3)
    source = write_source(
        tmp_path / "bad",
        [
            {
                "pasient_fnr": person_id(1),
                "when": "2019-02-01T10:00:00",
                "diagnosekoder": ["R74"],
                "regning_status": "avvist",
                "avvisningsgrunn": f"duplikat av regning for {victim}",
            },
            {
                "pasient_fnr": person_id(2),
                "when": "2019-02-01T10:00:00",
                "diagnosekoder": ["R74"],
                "behandler_praksistype": "FALE",
            },
            {"pasient_fnr": person_id(4), "when": "2019-03-01T10:00:00", "diagnosekoder": ["R74"], "pasient_kjonn": 7},
        ],
    )
    spec = write_spec(
        setup["spec"].parent,
        {
            **SPEC,
            "variables": [
                "pasient_pseudonym",
                "pasient_kjonn",
                {"name": "avvisningsgrunn", "free_text": "approved"},
            ],
        },
        name="E2E-0001.yaml",
    )
    code, out, err = run_cli(["deliver", spec, "--source", source], capsys)
    assert code == 1, err
    assert "expect_column_values_to_hold_no_fodselsnummer on avvisningsgrunn" in err
    assert "expect_column_values_to_be_in_set on pasient_kjonn" in err
    assert "Skipping step" not in err and "Dependencies for step" not in err  # Dagster's notices: only with -v
    assert victim not in err + out
    # not in the event log, metadata, logs, nor in what the run staged
    assert leaked({victim, person_id(1)}, [setup["home"], setup["deliveries"]]) == set()
    assert at_rest_problems(setup["home"]) == []
    assert not (setup["deliveries"] / "E2E-0001").exists() or not [
        p for p in (setup["deliveries"] / "E2E-0001").iterdir()
    ]


def test_empty_cohort_is_reported_not_delivered(setup, capsys) -> None:
    spec = write_spec(setup["spec"].parent, {**SPEC, "cohort": {"entry": {"diagnoses": ["Q99"]}}}, name="E2E-0001.yaml")
    code, out, err = run_cli(["deliver", spec, "--source", setup["source"]], capsys)
    assert code == 1
    (line,) = [line for line in err.splitlines() if line.startswith("error:")]  # one sentence, no trace
    assert line.endswith(
        "step cohort_cohort_is_not_empty failed: E2E-0001: check cohort_is_not_empty failed: the cohort is empty "
        "(no person meets the criteria); see the attrition. Nothing is delivered."
    ), err
    assert "Traceback" not in err and "DagsterAssetCheckFailedError" not in err
    assert not (setup["deliveries"] / "E2E-0001").exists()
    with DagsterInstance.get() as instance:  # the run's failure, as the UI shows it: the sentence, no stack
        (run,) = instance.get_runs(limit=1)
        (failure,) = instance.all_logs(run.run_id, of_type=DagsterEventType.RUN_FAILURE)
    assert failure.dagster_event is not None
    error = failure.dagster_event.job_failure_data.error
    assert error is not None and error.stack == [] and error.message == line.split("failed: ", 1)[1]


def test_missing_key_is_refused_before_the_run(setup, capsys, monkeypatch) -> None:
    monkeypatch.setenv("KUHR_PSEUDONYM_KEY_FILE", str(setup["home"] / "nope.key"))
    code, out, err = deliver(setup, capsys)
    assert code == 3
    assert "KUHR_PSEUDONYM_KEY_FILE" in err and "no such key file" in err and "Traceback" not in err
    assert not (setup["home"] / "staging").exists()


def test_refused_spec_never_runs(setup, capsys) -> None:
    spec = write_spec(
        setup["spec"].parent,
        {
            **SPEC,
            "approval": {
                **{
                    "status": "withdrawn",
                    "decided": "2026-01-01",
                    "valid_until": "2030-12-31",
                    "rek_reference": "REK 1",
                    "legal_basis": "x",
                }
            },
        },
        name="E2E-0001.yaml",
    )
    code, out, err = run_cli(["deliver", spec, "--source", setup["source"]], capsys)
    assert code == 2 and "approval.status" in err
    assert not (setup["home"] / "staging").exists()


@pytest.fixture
def own_source(tmp_path: Path) -> Path:
    """A source of this test's own, so no other test's use of the shared one can mask a change."""
    out = tmp_path / "own-source"
    generate_source(out, persons=200, from_year=2019, to_year=2020, seed=5)
    return out


def _fingerprint(folder: Path) -> dict[str, tuple[str, int, int]]:
    """Every entry under `folder`: content hash, mode and modification time."""
    out = {}
    for path in sorted(folder.rglob("*")):
        stat = path.lstat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "folder"
        out[str(path.relative_to(folder))] = (digest, stat.st_mode, stat.st_mtime_ns)
    return out


def test_source_folder_is_untouched(setup, capsys, own_source: Path) -> None:
    before = _fingerprint(own_source)
    code, _, err = deliver(setup, capsys, source=own_source)
    assert code == 0, err
    assert _fingerprint(own_source) == before


def test_statistics_delivery_end_to_end(setup, capsys, tmp_path) -> None:
    stats_spec = {
        **SPEC,
        "data_level": "statistics",
        "statistics": {
            "group_by": ["ar", "pasient_kjonn", {"name": "pasient_alder", "as": "group10"}],
            "measures": ["persons", "claims", "sum_refusjon"],
            "min_cell": 5,
        },
        "delivery": {**SPEC["delivery"], "format": "csv", "split_by": "none"},
    }
    spec = write_spec(setup["spec"].parent, stats_spec, name="E2E-0001.yaml", remove=["variables"])
    code, out, err = run_cli(["estimate", spec, "--source", setup["source"], "--json"], capsys)
    assert code == 0, err
    estimated = json.loads(out)
    code, out, err = run_cli(["deliver", spec, "--source", setup["source"]], capsys)
    assert code == 0, err
    # the same spec, key and source into a deliveries folder of its own: the same bytes in every
    # data file but the validation summary (it names its run); the proof's time is not delivered
    code, again, err = run_cli(["deliver", spec, "--source", setup["source"], "--out", tmp_path / "again"], capsys)
    assert code == 0, err
    hashes = [
        {f["path"]: f["plaintext_sha256"] for f in json.loads((Path(o.strip()) / "manifest.json").read_text())["files"]}
        for o in (out, again)
    ]
    assert {k: v for k, v in hashes[0].items() if k.startswith("data/") and "validation_summary" not in k} == {
        k: v for k, v in hashes[1].items() if k.startswith("data/") and "validation_summary" not in k
    }
    assert "data/disclosure_report.json.c4gh" in hashes[0]
    plain = tmp_path / "plain"
    code, _, err = run_cli(
        ["decrypt", out.strip(), "--sk", setup["alice"], "--out", plain, "--signer-pub", setup["signing_pub"]], capsys
    )
    assert code == 0, err
    import pyarrow.csv as pacsv

    table = pacsv.read_csv(plain / "statistics.csv", convert_options=pacsv.ConvertOptions(strings_can_be_null=True))
    # the estimate before approval told the table's size and its primary cells, and the attrition
    report = json.loads((plain / "disclosure_report.json").read_text())
    assert (estimated["cells"], estimated["primary"]) == (table.num_rows, report["primary"])
    attrition = pacsv.read_csv(plain / "attrition.csv", convert_options=pacsv.ConvertOptions(strings_can_be_null=True))
    rows = [{k: str(v) for k, v in row.items() if v is not None} for row in attrition.to_pylist()]
    assert_estimated_near(estimated["attrition"], rows)
    assert table.column_names == [
        "ar",
        "pasient_kjonn",
        "pasient_alder",
        "persons",
        "claims",
        "sum_refusjon",
        "suppressed",
    ]
    # the same cohort delivered person-level, aggregated here: every shown cell equals it
    person_level = {
        **SPEC,
        "variables": [
            "pasient_pseudonym",
            {"name": "behandlingstidspunkt", "as": "year"},
            "pasient_kjonn",
            {"name": "pasient_alder", "as": "group10"},
            "refusjon",
        ],
        "delivery": {**SPEC["delivery"], "split_by": "none"},
    }
    spec = write_spec(setup["spec"].parent, person_level, name="E2E-0001.yaml")
    code, out, err = run_cli(["deliver", spec, "--source", setup["source"]], capsys)
    assert code == 0, err
    claims_plain = tmp_path / "claims"
    code, _, err = run_cli(
        ["decrypt", out.strip(), "--sk", setup["alice"], "--out", claims_plain, "--signer-pub", setup["signing_pub"]],
        capsys,
    )
    assert code == 0, err
    claims = pq.read_table(claims_plain / "claims.parquet").to_pylist()
    expected: dict[tuple, dict] = {}
    for claim in claims:
        labels = (claim["behandlingstidspunkt"], claim["pasient_kjonn"], claim["pasient_alder"])
        for shown in itertools.product([True, False], repeat=3):
            key = tuple(v if keep else None for v, keep in zip(labels, shown, strict=True))
            cell = expected.setdefault(key, {"persons": set(), "claims": 0, "sum_refusjon": 0.0})
            cell["persons"].add(claim["pasient_pseudonym"])
            cell["claims"] += 1
            cell["sum_refusjon"] += claim["refusjon"]
    delivered = {(r["ar"], r["pasient_kjonn"], r["pasient_alder"]): r for r in table.to_pylist()}
    assert set(delivered) == set(expected)
    for key, cell in expected.items():
        row = delivered[key]
        if row["suppressed"]:
            assert (row["persons"], row["claims"], row["sum_refusjon"]) == (None, None, None)
        else:
            assert (row["persons"], row["claims"]) == (len(cell["persons"]), cell["claims"]), key
            assert row["sum_refusjon"] == pytest.approx(cell["sum_refusjon"]), key
    assert not delivered[(None, None, None)]["suppressed"]
    assert delivered[(None, None, None)]["persons"] == len({c["pasient_pseudonym"] for c in claims}) > 100


STATISTICS_SPEC = {
    **SPEC,
    "data_level": "statistics",
    "statistics": {"group_by": ["ar", "pasient_kjonn"], "measures": ["persons", "claims"], "min_cell": 5},
}


@pytest.mark.parametrize("data_level", ["pseudonymised", "statistics"])
def test_a_run_materialises_only_the_table_of_its_data_level(setup, capsys, caplog, data_level) -> None:
    """The asset graph shows what ran: a statistics application's run makes no extract (nor checks
    it), a person-level one no statistics table; the delivery is made from the one that was."""
    if data_level == "statistics":
        write_spec(setup["spec"].parent, STATISTICS_SPEC, name="E2E-0001.yaml", remove=["variables"])
    with caplog.at_level(logging.WARNING):
        code, out, err = deliver(setup, capsys)
    assert code == 0, err
    assert not [r.getMessage() for r in caplog.records if r.name.startswith("dagster")]
    instance = DagsterInstance.get()
    (run,) = instance.get_runs(limit=1)
    materialised = {
        e.asset_key.to_user_string() for e in instance.get_records_for_run(run.run_id, of_type=MATERIALIZED).records
    }
    checked = {
        e.event_log_entry.dagster_event.event_specific_data.check_name
        for e in instance.get_records_for_run(run.run_id, of_type=CHECKED).records
    }
    made, not_made = ("extract", "statistics") if data_level == "pseudonymised" else ("statistics", "extract")
    assert materialised == {"application", "cohort", made, "delivery"}
    assert checked == {"cohort_is_not_empty", "source_data_quality", f"{made}_passes_validation"}
    manifest = json.loads((Path(out.strip()) / "manifest.json").read_text())
    tables = {Path(f["path"]).name.split(".")[0] for f in manifest["files"] if f["path"].startswith("data/")}
    assert ("statistics" in tables) == (made == "statistics") and not_made not in materialised


def test_only_the_approved_data_level_is_ever_packaged(setup, tmp_path) -> None:
    """A statistics table handed to a person-level application's packaging (or the reverse) is
    refused before anything is written."""
    from kuhr_pipeline.application import load_spec
    from kuhr_pipeline.delivery.package import assemble_and_publish
    from kuhr_pipeline.disclosure.statistics import StatisticsTable
    from kuhr_pipeline.errors import DeliveryError

    loaded = load_spec(setup["spec"])
    unused: Any = None
    with pytest.raises(DeliveryError, match="data_level: is pseudonymised, but a StatisticsTable was made"):
        assemble_and_publish(loaded, unused, StatisticsTable(tmp_path / "t.parquet"), tmp_path / "out", unused, unused)
    assert not (tmp_path / "out").exists()


def test_source_quality_is_reported_not_blocking(setup, capsys, tmp_path) -> None:
    from tests.helpers import person_id

    rows = [{"pasient_fnr": person_id(n), "when": "2019-02-01T10:00:00", "diagnosekoder": ["R74"]} for n in range(8)]
    rows[0]["pasient_alder"] = 200  # impossible age: not delivered, but the source suite sees it
    source = write_source(tmp_path / "odd", rows)
    code, out, err = run_cli(["deliver", setup["spec"], "--source", source], capsys)
    assert code == 0, err
    assert "source quality: 1 of 10 expectations failed on a sample of 8 claims" in err
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        records = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(dg.AssetKey("cohort"), "source_data_quality"), limit=1
        )
    assert records and records[0].evaluation is not None and not records[0].evaluation.passed
    evaluation = records[0].evaluation
    assert evaluation.metadata["sample_claims"].value == "8"  # text: a check's numbers would be plotted as one series
    assert "expect_column_values_to_be_between on pasient_alder (1 of 8)" in (evaluation.description or "")


def test_a_column_the_source_contract_does_not_name_is_named_in_the_source_check(setup, capsys, tmp_path) -> None:
    """Never read and never delivered, but a data manager should know the export grew a column; a
    name that looks like a national id is not repeated."""
    import dagster as dg
    import pyarrow.parquet as pq

    from tests.helpers import person_id

    rows = [{"pasient_fnr": person_id(n), "when": "2019-02-01T10:00:00", "diagnosekoder": ["R74"]} for n in range(8)]
    source = write_source(tmp_path / "grown", rows)
    victim = source / "ar=2019" / "part-0.parquet"
    table = pq.read_table(victim)
    odd_name = person_id(42)
    pq.write_table(
        table.append_column("merknad", pa.array(["x"] * 8)).append_column(odd_name, pa.array([1] * 8)), victim
    )
    code, out, err = run_cli(["deliver", setup["spec"], "--source", source], capsys)
    assert code == 0, err
    with dg.DagsterInstance.get() as instance:
        records = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(dg.AssetKey("cohort"), "source_data_quality"), limit=1
        )
    description = records[0].evaluation.description or ""
    assert "expect_column_to_be_in_the_source_contract on merknad" in description
    assert "on (a name that looks like a national id)" in description and odd_name not in description + err + out


def test_a_source_quality_report_serves_only_its_own_run(tmp_path) -> None:
    """A check takes the sample report of its own run only: another run's, or a garbled file,
    and it samples the source itself."""
    from kuhr_pipeline.quality.source_quality import load_source_quality, save_source_quality
    from kuhr_pipeline.quality.validate import ExpectationOutcome, ValidationReport

    report = ValidationReport("source", [ExpectationOutcome("expect_column_values_to_not_be_null", "x", False, 9, 2)])
    from tests.helpers import staging_in

    path = tmp_path / "source_quality.json"
    save_source_quality(staging_in(tmp_path), "run-a", report, 9)
    assert load_source_quality(path, "run-a") == (report, 9)
    assert load_source_quality(path, "run-b") is None
    path.write_text("{not json", encoding="utf-8")
    assert load_source_quality(path, "run-a") is None
    assert load_source_quality(tmp_path / "absent.json", "run-a") is None


def test_an_unchanged_spec_is_delivered_again_on_purpose_only(setup, capsys, monkeypatch) -> None:
    """Each delivery is a disclosure: the same spec into the same deliveries folder is refused
    (exit 2, naming the earlier delivery), also after a comment-only edit, until --again."""
    code, out, err = deliver(setup, capsys)
    assert code == 0, err
    first = Path(out.strip()).name
    spec = setup["spec"]
    spec.write_text("# checked again by the data manager\n" + spec.read_text())
    code, out, err = deliver(setup, capsys)
    assert code == 2 and out == ""
    assert f"is unchanged since delivery {first}" in err and "pass --again" in err and "Traceback" not in err
    monkeypatch.setenv("KUHR_RAN_BY", "Dana Datamanager")  # the deployment names who runs it
    code, out, err = run_cli(["deliver", spec, "--source", setup["source"], "--again", "--json"], capsys)
    assert code == 0, err
    described = json.loads(out)  # one JSON object: what a script needs of the delivery
    second = described["delivery_id"]
    assert second != first and len(list(Path(described["path"]).parent.glob("2*"))) == 2
    assert described["state"] == "prepared"
    manifest = Path(described["path"]) / "manifest.json"
    assert described["manifest_sha256"] == hashlib.sha256(manifest.read_bytes()).hexdigest()
    assert described["spec_sha256"] == json.loads(manifest.read_text())["spec_sha256"]
    assert described["application_id"] == "E2E-0001" and int(described["persons"]) >= 5
    assert "cohort: " in err and " - dagster - " not in err  # the pipeline's lines, not Dagster's

    code, out, err = run_cli(["history", "E2E-0001", "--json"], capsys)  # what was delivered, from the log
    assert code == 0, err
    entries = [json.loads(line) for line in out.splitlines()]
    assert [e["delivery_id"] for e in entries] == [first, second]
    assert entries[0]["spec_sha256"] == entries[1]["spec_sha256"]  # the comment did not change the spec
    assert all(len(e["recipients"]) == 2 and e["files"] >= 5 and e["ran_by"] for e in entries)
    assert entries[1]["ran_by"] == "Dana Datamanager" != entries[0]["ran_by"]
    code, out, err = run_cli(["history"], capsys)
    assert code == 0 and len(out.splitlines()) == 2 and first in out.splitlines()[0]
    code, out, err = run_cli(["history", "../etc"], capsys)
    assert code == 2 and "Traceback" not in err
    code, out, err = run_cli(["deliver", spec, "--source", setup["source"], "--again", "-q"], capsys)
    assert code == 0 and err == "" and Path(out.strip()).parent.parent.name == "E2E-0001"  # the path only


def test_deliver_exit_codes_tell_what_to_fix(setup, capsys, monkeypatch, tmp_path) -> None:
    """1: the run or validation failed; 2: the spec is refused (or usage); 3: a key, the source or
    the audit log is missing or unusable."""
    spec, source = setup["spec"], setup["source"]
    code, _, err = run_cli(["deliver", spec, "--source", tmp_path / "no-source"], capsys)
    assert code == 3 and "Traceback" not in err, err
    monkeypatch.setenv("KUHR_SIGNING_KEY_FILE", str(tmp_path / "absent.pem"))
    code, _, err = run_cli(["deliver", spec, "--source", source], capsys)
    assert code == 3 and "KUHR_SIGNING_KEY_FILE" in err, err
    monkeypatch.undo()
    code, _, err = run_cli(["deliver", spec, "-q", "-v"], capsys)
    assert code == 2 and "-q or -v" in err
    code, _, err = run_cli(["deliver", tmp_path / "absent.yaml"], capsys)
    assert code == 2 and "no such spec file" in err


def test_version(capsys) -> None:
    from kuhr_pipeline import __version__

    code, out, _ = run_cli(["--version"], capsys)
    assert code == 0 and out.strip() == f"kuhr-pipeline, version {__version__}"


def assert_estimated_near(estimated: list[dict[str, str]], delivered: list[dict[str, str]]) -> None:
    """An estimate's attrition is the delivery's, each count perturbed by at most 2 and then
    rounded to 5 (the delivery's own: exact, or rounded to 5 for statistics)."""
    assert [r["step"] for r in estimated] == [r["step"] for r in delivered]
    for guess, exact in zip(estimated, delivered, strict=True):
        for column in ("persons", "bills"):
            if column in exact and "<" not in exact[column] + guess[column]:
                assert abs(int(guess[column]) - int(exact[column])) <= 2 + 2 + 2 and int(guess[column]) % 5 == 0


def test_estimate_shows_the_attrition_the_delivery_would_and_delivers_nothing(setup, capsys, tmp_path) -> None:
    """`estimate` before approval: pass 1 only, the attrition a delivery of the same spec carries,
    perturbed and rounded (test_estimates.py); no delivery, no staging; the audit log records who
    estimated which spec."""
    spec, source = setup["spec"], setup["source"]
    code, out, err = run_cli(["estimate", spec, "--source", source, "--json"], capsys)
    assert code == 0, err
    estimated = json.loads(out)
    assert estimated["application_id"] == "E2E-0001"
    assert not (setup["deliveries"] / "E2E-0001").exists()
    staged = setup["home"] / "staging"
    assert not staged.exists() or not [p for p in staged.rglob("*") if p.is_file()]
    log = [json.loads(line) for line in (setup["deliveries"] / "audit.jsonl").read_text().splitlines()]
    assert [(r["event"], r["application_id"], r["spec_sha256"][:8]) for r in log] == [
        ("estimate", "E2E-0001", log[0]["spec_sha256"][:8])
    ]

    code, out, err = deliver(setup, capsys)
    assert code == 0, err
    plain = tmp_path / "plain"
    code, _, err = run_cli(
        ["decrypt", out.strip(), "--sk", setup["alice"], "--out", plain, "--signer-pub", setup["signing_pub"]], capsys
    )
    assert code == 0, err
    delivered = [
        {k: v for k, v in row.items() if v is not None}
        for row in pq.read_table(plain / "attrition.parquet").to_pylist()
    ]
    assert_estimated_near(estimated["attrition"], delivered)
    code, _, err = run_cli(
        ["audit", "verify", "--log", setup["deliveries"] / "audit.jsonl", "--signer-pub", setup["signing_pub"]], capsys
    )
    assert code == 0, err  # the estimate line is signed and chained, and names no delivery
    code, out, _ = run_cli(["history", "E2E-0001"], capsys)
    assert len(out.splitlines()) == 1  # estimates are not deliveries


def test_estimate_takes_a_draft_and_refuses_the_rest(setup, capsys) -> None:
    draft = write_spec(setup["spec"].parent, {**SPEC, "approval.status": "draft"}, name="D.yaml")
    code, out, err = run_cli(["estimate", draft, "--source", setup["source"]], capsys)
    assert code == 0 and "a draft: estimated only" in err, err
    assert "E2E-0001: estimated cohort" in out and "persons with a claim in the period: persons" in out
    code, _, err = run_cli(["deliver", draft, "--source", setup["source"]], capsys)
    assert code == 2 and "approval.status" in err  # a draft is never delivered
    national_id = write_spec(
        setup["spec"].parent, {**SPEC, "variables": ["pasient_pseudonym", "pasient_fnr"]}, name="F.yaml"
    )
    code, _, err = run_cli(["estimate", national_id, "--source", setup["source"]], capsys)
    assert code == 2 and "'pasient_fnr' is a direct identifier" in err


def test_the_eleventh_estimate_of_a_day_is_refused(setup, capsys, monkeypatch, set_today) -> None:
    """Estimates per application id and day are limited (default 10; 2 here): past the limit,
    exit 2 before the register is read; another application id, or the next day, is answered."""
    from datetime import timedelta

    from kuhr_pipeline import clock
    from kuhr_pipeline.estimate import ESTIMATES_PER_DAY

    assert ESTIMATES_PER_DAY == 10
    monkeypatch.setenv("KUHR_ESTIMATES_PER_DAY", "2")
    draft = write_spec(setup["spec"].parent, {**SPEC, "approval.status": "draft"}, name="D.yaml")
    for _ in range(2):
        assert run_cli(["estimate", draft, "--source", setup["source"], "--json"], capsys)[0] == 0
    code, out, err = run_cli(["estimate", draft, "--source", setup["source"], "--json"], capsys)
    assert code == 2 and "had its 2 estimates today (KUHR_ESTIMATES_PER_DAY)" in err
    assert json.loads(out)["exit_code"] == 2 and "attrition" not in out  # --json: the refusal, no estimate
    log = (setup["deliveries"] / "audit.jsonl").read_text().splitlines()
    assert len(log) == 2  # the refused one read nothing and wrote nothing
    other = write_spec(
        setup["spec"].parent, {**SPEC, "application_id": "E2E-0002", "approval.status": "draft"}, "O.yaml"
    )
    assert run_cli(["estimate", other, "--source", setup["source"], "--json"], capsys)[0] == 0
    set_today(clock.today() + timedelta(days=1))
    assert run_cli(["estimate", draft, "--source", setup["source"], "--json"], capsys)[0] == 0
