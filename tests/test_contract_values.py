"""Every delivered value against the contract's definition, computed here without the package.

A hand-built source whose claims sit on the edges of each generalisation (ages 4/5, 89/90, bydel
codes at both ends of their ranges, the first and last second of a month and a year, 29 February)
is delivered person-level with each generalisation and as statistics; the decrypted tables must
equal what the contract (docs/contracts/, kuhr-facts for the bydel ranges) says for each claim.
"""

from __future__ import annotations

import itertools
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from tests.conftest import make_recipient
from tests.helpers import person_id, pseudonym, run_cli, write_source, write_spec

APP = "VAL-0001"
AGES = [0, 4, 5, 9, 10, 14, 15, 19, 20, 29, 44, 45, 49, 50, 84, 85, 89, 90, 95, 104]
KOMMUNER = [
    "0301",
    "0312",
    "0335",
    "1103",
    "1161",
    "1165",
    "1166",
    "1201",
    "1202",
    "1210",
    "1601",
    "1603",
    "1607",
    "4601",
    "5001",
    "3401",
]
TIMES = [
    "2019-01-01T00:00:00",
    "2019-01-31T23:59:59",
    "2019-02-28T08:15:00",
    "2019-06-30T12:00:00",
    "2019-12-31T23:59:59",
    "2020-01-01T00:00:01",
    "2020-02-29T10:00:00",
    "2020-07-15T16:45:30",
    "2020-11-30T09:00:00",
    "2020-12-31T23:59:58",
]
BEHANDLERE = ["1000001", "1000002", "9876543", "0123456"]
PERSONS = 90


def claims() -> list[dict[str, Any]]:
    """Person n has (n % 3) + 1 claims, each on a different age, kommune and time."""
    out = []
    for n in range(PERSONS):
        for j in range(n % 3 + 1):
            out.append(
                {
                    "pasient_fnr": person_id(n),
                    "when": TIMES[(n + 3 * j) % len(TIMES)],
                    "pasient_kjonn": 1 + n % 2,
                    "pasient_alder": AGES[(n + j) % len(AGES)],
                    "pasient_bostedskommune": KOMMUNER[(n + 5 * j) % len(KOMMUNER)],
                    "behandler_praksiskommune": KOMMUNER[(3 * n + j) % len(KOMMUNER)],
                    "behandler_id": BEHANDLERE[(n + j) % len(BEHANDLERE)],
                    "diagnosekoder": ["R74"],
                    "refusjon": float(100 + n),
                    "egenandel": float(j * 50),
                }
            )
    return out


# --- the contract's definitions, written from its text -------------------------------------------
BYDELER = {range(312, 336): "0301", range(1161, 1166): "1103", range(1202, 1211): "1201", range(1603, 1608): "1601"}


def age_group(age: int, width: int) -> str:
    if age >= 90:
        return "90+"
    low = age - age % width
    return f"{low:02d}-{low + width - 1:02d}"


def kommune(code: str) -> str:
    return next((target for numbers, target in BYDELER.items() if int(code) in numbers), code)


CONTRACT = {
    "exact": lambda v: v,
    "group5": lambda age: age_group(age, 5),
    "group10": lambda age: age_group(age, 10),
    "kommune": kommune,
    "fylke": lambda code: code[:2],
    "timestamp": lambda when: when,
    "date": lambda when: when.date(),
    "month": lambda when: f"{when.year:04d}-{when.month:02d}",
    "year": lambda when: when.year,
}


def expected_value(claim: dict[str, Any], name: str, how: str, master: bytes) -> Any:
    if name == "pasient_pseudonym":
        return pseudonym(master, APP, claim["pasient_fnr"])
    if name == "behandler_pseudonym":
        return pseudonym(master, f"{APP}/behandler", claim["behandler_id"])
    value = datetime.fromisoformat(claim["when"]) if name == "behandlingstidspunkt" else claim[name]
    return CONTRACT[how](value)


# --- the pipeline, end to end -------------------------------------------------------------------
@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_source(tmp_path_factory.mktemp("values") / "source", claims())


@pytest.fixture
def deliver(tmp_path: Path, keys_env: dict[str, Path], source: Path, capsys):
    apps = tmp_path / "applications"
    apps.mkdir()
    secret, _ = make_recipient(apps, "recipient")
    master = bytes.fromhex("".join(keys_env["master"].read_text().split()))

    def run(changes: dict[str, Any], remove: list[str] | None = None) -> dict[str, Any]:
        spec = write_spec(apps, {"application_id": APP, **changes}, name=f"{APP}.yaml", remove=remove)
        code, out, err = run_cli(["deliver", spec, "--source", source], capsys)
        assert code == 0, err
        plain = tmp_path / f"plain-{len(list(tmp_path.glob('plain-*')))}"
        code, _, err = run_cli(
            ["decrypt", out.strip(), "--sk", secret, "--out", plain, "--signer-pub", keys_env["signing_pub"]], capsys
        )
        assert code == 0, err
        return {"plain": plain, "master": master, "folder": Path(out.strip())}

    return run


CASES = [
    {"pasient_alder": "group5", "pasient_bostedskommune": "kommune", "behandler_praksiskommune": "fylke"},
    {"pasient_alder": "group10", "pasient_bostedskommune": "fylke", "behandler_praksiskommune": "kommune"},
    {"pasient_alder": "exact", "pasient_bostedskommune": "kommune", "behandler_praksiskommune": "kommune"},
    {"pasient_alder": "group10", "pasient_bostedskommune": "fylke", "behandler_praksiskommune": "fylke"},
]
TIME_AS = ["month", "date", "timestamp", "year"]


@pytest.mark.parametrize(("generalised", "time_as"), list(zip(CASES, TIME_AS, strict=True)), ids=TIME_AS)
def test_each_delivered_claim_is_the_contracts_value_of_its_bill(deliver, generalised, time_as) -> None:
    columns = [
        ("pasient_pseudonym", "exact"),
        ("pasient_kjonn", "exact"),
        *generalised.items(),
        ("behandlingstidspunkt", time_as),
        ("behandler_pseudonym", "exact"),
    ]
    variables = [name if how == "exact" else {"name": name, "as": how} for name, how in columns]
    result = deliver({"variables": variables})
    delivered = pq.read_table(result["plain"] / "claims.parquet")
    assert delivered.column_names == [name for name, _ in columns]
    rows = sorted((tuple(r.values()) for r in delivered.to_pylist()), key=repr)
    expected = sorted(
        (tuple(expected_value(claim, name, how, result["master"]) for name, how in columns) for claim in claims()),
        key=repr,
    )
    assert rows == expected


STATISTICS_CASES = {
    "year-group10-fylke": [
        {"name": "behandlingstidspunkt", "as": "year"},
        {"name": "pasient_alder", "as": "group10"},
        {"name": "pasient_bostedskommune", "as": "fylke"},
    ],
    "month-group5-kommune": [
        {"name": "behandlingstidspunkt", "as": "month"},
        {"name": "pasient_alder", "as": "group5"},
        {"name": "behandler_praksiskommune", "as": "kommune"},
    ],
}
MIN_CELL = 3
MEASURES = ["persons", "claims", "sum_egenandel", "sum_refusjon"]


def expected_cube(group_by: list[dict[str, str]]) -> dict[tuple, dict[str, float]]:
    """Every cell and margin (GROUPING SETS over the cube) of the contract's generalised values."""
    labelled = [
        (
            tuple(expected_value(claim, d["name"], d["as"], b"") for d in group_by),
            claim,
        )
        for claim in claims()
    ]
    cells: dict[tuple, dict[str, Any]] = {}
    for shown in itertools.product([True, False], repeat=len(group_by)):
        for labels, claim in labelled:
            key = tuple(label if keep else None for label, keep in zip(labels, shown, strict=True))
            cell = cells.setdefault(key, {"persons": set(), "claims": 0, "sum_egenandel": 0.0, "sum_refusjon": 0.0})
            cell["persons"].add(claim["pasient_fnr"])
            cell["claims"] += 1
            cell["sum_egenandel"] += claim["egenandel"]
            cell["sum_refusjon"] += claim["refusjon"]
    return {key: {**cell, "persons": len(cell["persons"])} for key, cell in cells.items()}


@pytest.mark.parametrize("case", list(STATISTICS_CASES))
def test_each_statistics_cell_is_the_contracts_aggregate(deliver, case: str) -> None:
    group_by = STATISTICS_CASES[case]
    result = deliver(
        {
            "data_level": "statistics",
            "statistics": {"group_by": group_by, "measures": MEASURES, "min_cell": MIN_CELL},
        },
        remove=["variables"],
    )
    table = pq.read_table(result["plain"] / "statistics.parquet")
    names = [d["name"] for d in group_by]
    assert table.column_names == [*names, *MEASURES, "suppressed"]
    expected = expected_cube(group_by)
    delivered = {tuple(row[n] for n in names): row for row in table.to_pylist()}
    assert set(delivered) == set(expected)  # every cell and margin, labelled as the contract says
    shown = 0
    for key, truth in expected.items():
        row = delivered[key]
        if row["suppressed"]:
            assert all(row[m] is None for m in MEASURES), key
            continue
        shown += 1
        assert truth["persons"] == 0 or truth["persons"] >= MIN_CELL, key
        assert row["persons"] == truth["persons"] and row["claims"] == truth["claims"], key
        assert row["sum_egenandel"] == pytest.approx(truth["sum_egenandel"]), key
        assert row["sum_refusjon"] == pytest.approx(truth["sum_refusjon"]), key
    for key, truth in expected.items():
        if 0 < truth["persons"] < MIN_CELL:
            assert delivered[key]["suppressed"], key  # primary suppression
    assert delivered[(None,) * len(names)]["persons"] == PERSONS
    assert shown > len(names)  # the grand total and some margins are shown: the comparison means something
    report = json.loads((result["plain"] / "disclosure_report.json").read_text())  # the proof's figures
    assert report["proof_holds"] and report["cells"] == table.num_rows
    assert report["suppressed"] == report["primary"] + report["secondary"] == len(delivered) - shown
    assert report["suppressed_without_proof"] == report["suppressed_exposed_to_an_insider"] == 0
    assert set(report["smallest_interval_width_at_least"]) == {"claims", "sum_egenandel", "sum_refusjon"}


def test_the_sources_edges_are_really_there() -> None:
    """The source reaches every edge the generalisations have (else a test above proves less)."""
    ages = {claim["pasient_alder"] for claim in claims()}
    kommuner = {claim["pasient_bostedskommune"] for claim in claims()} | {
        claim["behandler_praksiskommune"] for claim in claims()
    }
    times = {claim["when"] for claim in claims()}
    assert ages == set(AGES) and kommuner == set(KOMMUNER) and times == set(TIMES)


def attrition_rows(plain: Path) -> list[tuple[str, str | None, str | None]]:
    table = pq.read_table(plain / "attrition.parquet")
    return [tuple(row.values()) for row in table.to_pylist()]


def test_attrition_masks_below_the_statistics_min_cell(deliver) -> None:
    """With `min_cell: 100` every count of this 90-person cohort is below the threshold: each is
    shown as `<100`, and a zero stays 0 (the contract's masking uses the spec's min_cell)."""
    group_by = STATISTICS_CASES["year-group10-fylke"]
    result = deliver(
        {"data_level": "statistics", "statistics": {"group_by": group_by, "measures": MEASURES, "min_cell": 100}},
        remove=["variables"],
    )
    masked = "<100"
    assert attrition_rows(result["plain"]) == [
        ("persons with a claim in the period", masked, None),
        ("with an entry claim", masked, None),
        ("with at least 1 entry claims", masked, None),
        ("after age", masked, None),
        ("after sex", masked, None),
        ("after kommune", masked, None),
        ("after exclusion (the cohort)", masked, None),
        ("bills dropped: missing fødselsnummer", None, "0"),
        ("bills dropped: malformed fødselsnummer", None, "0"),
        ("bills dropped: bad check digits", None, "0"),
        ("bills dropped: synthetic test number", None, "0"),
    ]
    table = pq.read_table(result["plain"] / "statistics.parquet").to_pylist()
    assert all(row["suppressed"] for row in table)  # no cell reaches 100 persons


def test_codebook_and_readme_describe_what_was_delivered(deliver) -> None:
    """The codebook has one section per delivered column, in order, saying its generalisation in
    the contract's words; the README names the application, period, domain and every data file."""
    variables = [
        "pasient_pseudonym",
        {"name": "pasient_alder", "as": "group5"},
        {"name": "pasient_bostedskommune", "as": "fylke"},
        {"name": "behandlingstidspunkt", "as": "month"},
    ]
    result = deliver({"variables": variables, "title": "Edges of every generalisation"})
    folder = result["folder"]
    codebook = (folder / "codebook.md").read_text()
    sections = [line[4:-1] for line in codebook.splitlines() if line.startswith("## `")]
    assert sections == ["pasient_pseudonym", "pasient_alder", "pasient_bostedskommune", "behandlingstidspunkt"]
    for name, words in [
        ("pasient_alder", '5-year age groups "00-04" … "85-89", "90+"'),
        ("pasient_bostedskommune", "the first two digits of the kommune number"),
        ("behandlingstidspunkt", '"YYYY-MM"'),
    ]:
        section = codebook.split(f"## `{name}`")[1].split("\n## ")[0]
        assert words in section, name
    assert "## Attrition table" in codebook
    readme = (folder / "README.md").read_text()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert f"Application: {APP} – Edges of every generalisation" in readme
    assert "period 2019-01-01 – 2020-12-31; linkage domain VAL-0001" in readme
    data_files = [f["path"] for f in manifest["files"] if f["path"].startswith("data/")]
    assert data_files and all(f"- `{path}`" in readme for path in data_files)
    assert manifest["delivery_id"] in readme.splitlines()[0]
