"""Linkage with other registers: the project's population file, its løpenumre, the refusals, and
the pseudonyms' provenance in the manifest (application-spec.md, "Linkage with other registers")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from crypt4gh import lib as c4gh_lib
from crypt4gh.keys import get_public_key
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from kuhr_pipeline.application import load_spec
from kuhr_pipeline.cohort import find_cohort, select_cohort
from kuhr_pipeline.identity.population import encrypt_population, load_population, new_population_key
from kuhr_pipeline.identity.pseudonym import key_fingerprint
from kuhr_pipeline.source import open_source
from tests.helpers import person_id, pseudonym, read_staged, run_cli, staging_in, write_source, write_spec
from tests.leakscan import leaked

MASTER = bytes(range(32))
P = {n: person_id(n) for n in range(1, 31)}
ENTRY = {"diagnoses": {"ICPC-2": ["R74"]}}

# Persons 1–10 have an entry claim; 11 and 12 only other claims; 13–20 are not listed.
ROWS = [
    *(
        {"pasient_fnr": P[n], "when": f"2020-0{1 + n % 9}-1{n % 9}T10:00:00", "diagnosekoder": ["R74"]}
        for n in range(1, 11)
    ),
    *({"pasient_fnr": P[n], "when": "2020-03-03T10:00:00", "diagnosekoder": ["A04"]} for n in range(11, 21)),
    *({"pasient_fnr": P[n], "when": "2019-05-05T10:00:00", "diagnosekoder": ["A04"]} for n in range(1, 21)),
]
LOPENR = {n: f"LNR{n:04d}" for n in range(1, 16)}
POPULATION_ROWS = [
    *(f"{P[n]},{LOPENR[n]}" for n in range(1, 13)),  # usable: 1–12
    f"{P[30]},LNR0030",  # listed, but no claim in the source
    "123,LNR9999",  # not a fødselsnummer
    f"{P[13]},LNR0013",  # 13 listed twice: neither row is used
    f"{P[13]},LNR0113",
    f"{P[14]},SAME",  # one løpenummer for 14 and 15: neither is used
    f"{P[15]},SAME",
]


@pytest.fixture
def population_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    secret = tmp_path / "keys" / "population.sec"
    new_population_key(secret)
    monkeypatch.setenv("KUHR_POPULATION_KEY_FILE", str(secret))
    return secret


def _population(spec_dir: Path, key: Path, rows: list[str], header: str = "fnr,lopenr") -> str:
    plain = spec_dir.parent / "utvalg.csv"
    plain.write_text("\n".join([header, *rows]) + "\n")
    (spec_dir / "populations").mkdir(exist_ok=True)
    out = spec_dir / "populations" / "p.c4gh"
    if "fnr" in header:
        encrypt_population(plain, key.with_suffix(".pub"), out)
    else:  # what encrypt_population refuses to write: made as a careless project would
        writer = X25519PrivateKey.generate().private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        with plain.open("rb") as infile, out.open("wb") as outfile:
            c4gh_lib.encrypt([(0, writer, get_public_key(str(key.with_suffix(".pub"))))], infile, outfile)
    plain.unlink()
    return "populations/p.c4gh"


def _loaded(spec_dir: Path, key: Path, **changes: object):
    changes = {"period": {"from": "2019-01-01", "to": "2020-12-31"}, "cohort": {"entry": ENTRY}, **changes}
    changes.setdefault("population", {"file": _population(spec_dir, key, POPULATION_ROWS)})
    return load_spec(write_spec(spec_dir, changes))


@pytest.fixture
def source(tmp_path: Path):
    return open_source(write_source(tmp_path / "source", ROWS))


def test_the_cohort_is_the_listed_persons_who_meet_the_criteria(source, spec_dir, population_key, tmp_path) -> None:
    loaded = _loaded(spec_dir, population_key)
    population = load_population(loaded)
    claims = select_cohort(source, loaded.spec, MASTER, staging_in(tmp_path / "s"), population=population)
    delivered = set(read_staged(claims.path).column("pasient_pseudonym").to_pylist())
    assert delivered == {pseudonym(MASTER, "TEST-0001", P[n]) for n in range(1, 11)}
    assert claims.attrition.steps[:4] == [
        ("persons in the population file", 18),
        ("population rows not used (invalid or duplicate)", 5),
        ("listed persons with a claim in the period", 12),  # 1–12; not 30 (no claim), not 13–15
        ("with an entry claim", 10),
    ]
    assert repr(population) == "Population(rows=18, used=13, not_used=5)"  # counts only, never an id


def test_without_entry_criteria_every_listed_person_with_a_claim_is_in(
    source, spec_dir, population_key, tmp_path
) -> None:
    loaded = _loaded(spec_dir, population_key, cohort={"age": {"min": 0, "max": 120}})
    found = find_cohort(source, loaded.spec, staging_in(tmp_path / "s"), population=load_population(loaded))
    assert found.persons == 12
    assert dict(found.attrition.steps)["with an entry claim"] == 12  # the first claim in the period is the index


def test_lopenr_delivers_each_persons_lopenummer_from_the_file(source, spec_dir, population_key, tmp_path) -> None:
    loaded = _loaded(spec_dir, population_key, identity={"pseudonym": "lopenr"})
    claims = select_cohort(source, loaded.spec, MASTER, staging_in(tmp_path / "s"), population=load_population(loaded))
    table = read_staged(claims.path)
    got = sorted(
        zip(
            table.column("pasient_pseudonym").to_pylist(), table.column("behandlingstidspunkt").to_pylist(), strict=True
        )
    )
    # an independent join: the source's rows of persons 1–10 by person, their løpenummer from the list
    by_person = sorted((LOPENR[n], row["when"]) for n in range(1, 11) for row in ROWS if row["pasient_fnr"] == P[n])
    assert [(lnr, when.isoformat()) for lnr, when in got] == by_person


@pytest.mark.parametrize(
    ("changes", "field", "text"),
    [
        ({"population": {"file": "populations/none.c4gh"}}, "population.file", "does not exist"),
        ({"population": {"file": "../outside.c4gh"}}, "population.file", "lies outside the spec's folder"),
        (
            {"identity": {"pseudonym": "lopenr"}, "population": None},
            "identity.pseudonym",
            "lopenr needs population.file",
        ),
        (
            {"identity": {"pseudonym": "issued", "bridge_destroy_by": "2030-01-01"}},
            "identity.bridge_recipients",
            "is required",
        ),
        (
            {
                "identity": {
                    "pseudonym": "issued",
                    "bridge_recipients": [{"name": "K", "public_key": "recipient.pub"}],
                    "bridge_destroy_by": "2020-01-01",
                }
            },
            "identity.bridge_destroy_by",
            "must not have passed",
        ),
        (
            {"identity": {"pseudonym": "hmac", "bridge_destroy_by": "2030-01-01"}},
            "identity.bridge_recipients",
            "only identity.pseudonym: issued",
        ),
        (
            {"cohort": {"age": {"min": 0, "max": 5}}, "population": None},
            "cohort.entry",
            "is required unless population.file",
        ),
    ],
)
def test_the_contracts_bad_linkage_specs_are_refused(spec_dir, population_key, capsys, changes, field, text) -> None:
    body = {
        "period": {"from": "2019-01-01", "to": "2020-12-31"},
        "population": {"file": _population(spec_dir, population_key, POPULATION_ROWS)},
    }
    body.update(changes)
    remove = [name for name, value in body.items() if value is None]
    path = write_spec(
        spec_dir, {k: v for k, v in body.items() if v is not None}, remove=[r for r in remove if r != "population"]
    )
    code, out, err = run_cli(["check", path], capsys)
    assert code == 2 and f"{field}: " in err and text in err, err


def test_a_population_that_cannot_be_read_is_refused_by_check(
    spec_dir, population_key, tmp_path, capsys, monkeypatch
) -> None:
    other = tmp_path / "other" / "population.sec"
    new_population_key(other)
    file = _population(spec_dir, other, POPULATION_ROWS)  # encrypted to another registry's key
    code, _, err = run_cli(["check", write_spec(spec_dir, {"population": {"file": file}})], capsys)
    assert code == 2 and "cannot be decrypted with the registry's population key" in err
    file = _population(spec_dir, population_key, [P[1]], header="person")
    code, _, err = run_cli(["check", write_spec(spec_dir, {"population": {"file": file}})], capsys)
    assert code == 2 and "population.file: " in err and "has no fnr column" in err
    file = _population(spec_dir, population_key, [P[1]], header="fnr")
    path = write_spec(spec_dir, {"population": {"file": file}, "identity": {"pseudonym": "lopenr"}})
    code, _, err = run_cli(["check", path], capsys)
    assert code == 2 and "has no lopenr column" in err
    code, out, err = run_cli(["check", write_spec(spec_dir, {"population": {"file": file}})], capsys)
    assert code == 0 and "population: 1 rows, 0 not used" in out, err
    file = _population(spec_dir, population_key, [f"{P[1]},{P[2]}", f"{P[3]},LNR3"])  # a løpenummer that is an id
    code, _, err = run_cli(["check", write_spec(spec_dir, {"population": {"file": file}})], capsys)
    assert code == 2 and "a lopenr is a fødselsnummer (1 rows)" in err and P[2] not in err
    monkeypatch.delenv("KUHR_POPULATION_KEY_FILE")
    code, _, err = run_cli(["check", path], capsys)
    assert code != 0 and "KUHR_POPULATION_KEY_FILE: is not set" in err and "Traceback" not in err
    assert not list(spec_dir.parent.rglob("*.csv"))  # no plaintext population anywhere


def test_a_delivery_with_a_population_leaks_none_of_its_ids_and_names_its_pseudonyms(
    keys_env, population_key, tmp_path, capsys, monkeypatch
) -> None:
    apps = tmp_path / "applications"
    apps.mkdir()
    from tests.conftest import make_recipient

    make_recipient(apps, "recipient")
    source = write_source(tmp_path / "source", ROWS * 1)
    loaded = _loaded(apps, population_key, identity={"pseudonym": "lopenr"})
    code, out, err = run_cli(["deliver", loaded.path, "--source", source], capsys)
    assert code == 0, err
    pending = Path(out.strip().splitlines()[-1])
    manifest = json.loads((pending / "manifest.json").read_text())
    assert manifest["pseudonyms"]["form"] == "lopenr"
    assert manifest["pseudonyms"]["linkage_domain"] == "TEST-0001"
    assert manifest["pseudonyms"]["key_fingerprint"] == key_fingerprint(
        bytes.fromhex(keys_env["master"].read_text().strip()), "TEST-0001"
    )
    assert manifest["pseudonyms"]["population_file_sha256"] == loaded.population_sha256
    listed = {row.split(",")[0] for row in POPULATION_ROWS}
    found = leaked(listed - {"123"}, [keys_env["home"], keys_env["deliveries"]], [out, err])
    assert not found, f"{len(found)} ids of the population file leaked"
