"""`kuhr-pipeline dummy`: a synthetic delivery with the exact shape of the real one.

Each example application is delivered for real (on a synthetic source, through `deliver`) and as
a dummy; both are decrypted and compared: the same files, the same columns in the same order with
the same types, the same codebook. The dummy is signed and verifiable, says `synthetic: true`,
and shares no pseudonym with the real delivery. Separately, the dummy persons of a spec with every
cohort rule are run through the cohort selection as a source: every one of them is admitted.
"""

from __future__ import annotations

import json
import re
import secrets
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from kuhr_pipeline import clock
from kuhr_pipeline.application import load_spec
from kuhr_pipeline.cohort import select_cohort
from kuhr_pipeline.dummy.source import write_dummy_source
from kuhr_pipeline.source import open_source
from kuhr_pipeline.staging import Staging
from kuhr_pipeline.synth import generate_source
from tests.conftest import make_recipient
from tests.helpers import run_cli, small_application, write_spec

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "applications").glob("*.yaml"))
AS_WRITTEN = pacsv.ConvertOptions(strings_can_be_null=True)  # an empty CSV field is a null
NULLABLE = {"pasient_fodselsar", "pasient_alder", "pasient_bostedskommune", "diagnosekodeverk", "fritaksgrunn"}


@pytest.fixture(scope="module")
def register(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic register covering the example applications' periods."""
    source = tmp_path_factory.mktemp("register") / "source"
    generate_source(source, persons=1500, from_year=2019, to_year=2024, seed=5)
    return source


def _decrypted(folder: Path, secret: Path, keys_env: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> Path:
    out = folder.parent / f"{folder.name}-plain"
    code, _, err = run_cli(
        ["decrypt", folder, "--sk", secret, "--signer-pub", keys_env["signing_pub"], "--out", out], capsys
    )
    assert code == 0, err
    return out


def _tables(plain: Path) -> dict[str, pa.Table]:
    """Each decrypted table by its kind (`claims_2019` and `claims_2020` are both `claims`)."""
    tables: dict[str, list[pa.Table]] = {}
    for path in sorted(plain.rglob("*.parquet")) + sorted(plain.rglob("*.csv")):
        table = pq.read_table(path) if path.suffix == ".parquet" else pacsv.read_csv(path, convert_options=AS_WRITTEN)
        tables.setdefault(re.sub(r"_\d{4}$", "", path.stem), []).append(table)
    return {kind: pa.concat_tables(parts, promote_options="permissive") for kind, parts in tables.items()}


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_a_dummy_has_the_shape_of_the_real_delivery(example, register, keys_env, tmp_path, capsys) -> None:
    secret = ROOT / "demo-keys" / f"{example.stem.lower()}.sec"
    code, real_path, err = run_cli(["deliver", example, "--source", register, "--again", "-q"], capsys)
    assert code == 0, err
    code, out, err = run_cli(["dummy", example, "--out", tmp_path / "dummies"], capsys)
    assert code == 0, err
    dummy = Path(out.strip().rsplit(" ", 1)[1])
    real = Path(real_path.strip())

    code, out, err = run_cli(["verify", dummy, "--signer-pub", keys_env["signing_pub"]], capsys)
    assert code == 0, err
    manifest = json.loads((dummy / "manifest.json").read_text())
    assert manifest["synthetic"] is True
    assert json.loads((real / "manifest.json").read_text())["synthetic"] is False
    readme = (dummy / "README.md").read_text()
    assert readme.startswith("# SYNTHETIC dummy") and "SYNTHETIC DATA: NOT A REAL DELIVERY" in readme
    assert (dummy / "codebook.md").read_text() == (real / "codebook.md").read_text()
    assert sorted(p.name for p in (dummy / "data").iterdir() if "claims_" not in p.name) == sorted(
        p.name for p in (real / "data").iterdir() if "claims_" not in p.name
    )

    fake, true = (_tables(_decrypted(d, secret, keys_env, capsys)) for d in (dummy, real))
    assert fake.keys() == true.keys()
    for kind, table in true.items():
        assert fake[kind].schema == table.schema, kind  # names, order and types
        assert fake[kind].num_rows > 0, kind
    if "claims" in true:
        claims = fake["claims"]
        for column in NULLABLE & set(claims.column_names):
            assert claims.column(column).null_count > 0, column
        for column in {"pasient_pseudonym", "behandler_pseudonym"} & set(claims.column_names):
            assert not set(claims.column(column).to_pylist()) & set(true["claims"].column(column).to_pylist())


def test_dummy_persons_meet_every_cohort_rule(tmp_path) -> None:
    """A spec with every rule: each dummy person is admitted when the dummy source is selected from."""
    make_recipient(tmp_path, "recipient")
    spec_path = write_spec(
        tmp_path,
        {
            "approval.status": "draft",
            "period": {"from": "2019-01-01", "to": "2021-12-31"},
            "cohort": {
                "entry": {"diagnoses": {"ICD-10": ["E11*"], "ICPC-2": ["T90"]}, "takster": ["2ad", "2ak"]},
                "min_entry_claims": 2,
                "washout_days": 365,
                "age": {"min": 40, "max": 60},
                "sex": [2],
                "bostedskommuner": ["03*", "4601"],
                "exclude": {"diagnoses": {"ICPC-2": ["P*"]}, "window": {"before": 30, "after": 30}},
            },
        },
    )
    spec = load_spec(spec_path, draft=True).spec
    made = write_dummy_source(spec, str(spec_path), tmp_path / "source", 120, 3, clock.today())
    key = secrets.token_bytes(32)
    claims = select_cohort(open_source(made.path), spec, key, Staging.for_run(tmp_path / "staging", key, "t"))
    assert made.persons == 120 and claims.persons == made.persons
    steps = dict(claims.attrition.steps)
    assert set(steps.values()) == {120}, steps


def test_dummy_persons_live_where_a_map_pattern_says_in_every_year(tmp_path) -> None:
    """Under `geography`, "3201" is Bærum in every year: dummies recorded as 0219 or 3024 are in."""
    make_recipient(tmp_path, "recipient")
    changes = {
        "approval.status": "draft",
        "period": {"from": "2019-01-01", "to": "2024-12-31"},
        "cohort": {"entry": {"diagnoses": ["R74"]}, "bostedskommuner": ["3201"]},
        "geography": {"map": 2024},
    }
    spec = load_spec(write_spec(tmp_path, changes), draft=True).spec
    made = write_dummy_source(spec, "spec.yaml", tmp_path / "source", 60, 4, clock.today())
    key = secrets.token_bytes(32)
    claims = select_cohort(open_source(made.path), spec, key, Staging.for_run(tmp_path / "staging", key, "t"))
    assert claims.persons == made.persons == 60
    recorded = set(pq.read_table(made.path, columns=["pasient_bostedskommune"]).column(0).to_pylist())
    assert recorded - {None} == {"0219", "3024", "3201"}  # (a dummy leaves some nullable values out)


def test_a_dummy_needs_no_source_and_refuses_what_the_contract_refuses(tmp_path, keys_env, capsys, monkeypatch) -> None:
    monkeypatch.setenv("KUHR_SOURCE", str(tmp_path / "no-such-source"))
    _, spec = small_application(tmp_path, "DUMMY-1")
    draft = write_spec(spec.parent, {"application_id": "DUMMY-1", "approval.status": "draft"}, name="d.yaml")
    code, out, err = run_cli(["dummy", draft, "--out", tmp_path / "dummies"], capsys)
    assert code == 0, err
    assert "synthetic" in out and not keys_env["deliveries"].exists()  # the register's log is not touched
    refused = write_spec(spec.parent, {"variables": ["pasient_fnr"]}, name="fnr.yaml")
    code, _, err = run_cli(["dummy", refused, "--out", tmp_path / "dummies"], capsys)
    assert code == 2 and "pasient_fnr" in err and "Traceback" not in err
    code, _, err = run_cli(["dummy", draft, "--out", keys_env["deliveries"]], capsys)
    assert code == 2 and "the deliveries folder" in err
