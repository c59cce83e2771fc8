"""Small counts never shown unmasked: a 3-person cohort, delivered; everything the run stored in
the instance (log lines, asset and check metadata, charts) and printed is read back and searched."""

from __future__ import annotations

import re

import dagster as dg

from kuhr_pipeline.disclosure.masking import mask_count
from tests.conftest import make_recipient
from tests.helpers import person_id, run_cli, write_source, write_spec

# a number next to what it counts, e.g. "3 persons", "persons: 3", "(2 rows)"
_COUNTED = re.compile(
    r"(?<![\d<.,-])([1-4])\s+(persons?|claims?|bills?|rows?)\b|\b(persons|claims|rows)\W+([1-4])(?![\d.,])"
)


def test_masking_rule() -> None:
    assert [mask_count(n) for n in (0, 1, 4, 5, 12)] == ["0", "<5", "<5", "5", "12"]
    assert mask_count(9, threshold=10) == "<10"


def _texts(value: object) -> list[str]:
    if isinstance(value, dg.MetadataValue):
        value = getattr(value, "value", value)
    if isinstance(value, dg.TableSchema):
        return [f"{c.name} {c.type}" for c in value.columns]
    if isinstance(value, dg.TableMetadataValue):  # every cell of a table shown in the UI
        return [t for record in value.records for t in _texts(dict(record.data))]
    if isinstance(value, dict):
        return [
            t for k, v in value.items() for t in [f"{k}: {v}" if not isinstance(v, (dict, list)) else "", *_texts(v)]
        ]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _texts(v)]
    return [str(value)]


def test_a_three_person_cohort_shows_no_small_count(tmp_path, keys_env, capsys) -> None:
    rows = [
        {"pasient_fnr": person_id(n), "when": f"2019-0{n}-01T10:00:00", "diagnosekoder": ["R74"]} for n in (1, 2, 3)
    ]
    rows += [
        {"pasient_fnr": person_id(n), "when": "2019-05-01T10:00:00", "diagnosekoder": ["A04"]} for n in range(4, 30)
    ]
    source = write_source(tmp_path / "source", rows)
    apps = tmp_path / "applications"
    apps.mkdir()
    make_recipient(apps, "recipient")
    spec = write_spec(apps, {"application_id": "SMALL-1"}, name="SMALL-1.yaml")
    code, out, err = run_cli(["deliver", spec, "--source", source], capsys)
    assert code == 0, err

    shown: list[str] = [out, err]
    with dg.DagsterInstance.get() as instance:
        (run,) = instance.get_runs()
        for record in instance.all_logs(run.run_id):
            shown.append(record.user_message or "")
            event = record.dagster_event
            if event is None:
                continue
            data = event.event_specific_data
            for holder in (getattr(data, "materialization", None), data):
                metadata = getattr(holder, "metadata", None)
                if not isinstance(metadata, dict):
                    continue
                for key, value in metadata.items():
                    if key in ("persons", "claims", "rows", "dagster/row_count") and isinstance(
                        getattr(value, "value", value), int
                    ):
                        assert not 0 < value.value < 5, f"{key} = {value.value} unmasked"
                    shown += [f"{key}: {t}" for t in _texts(value)]
    found = [m.group(0) for text in shown for m in _COUNTED.finditer(text)]
    assert found == [], found
    joined = "\n".join(shown)
    assert "cohort: <5 persons, <5 claims" in joined and "persons: <5" in joined  # masked, and shown


def test_statistics_attrition_is_rounded_to_5_so_steps_cannot_be_differenced(tmp_path, spec_dir) -> None:
    """1000 persons with an entry claim, 998 after sex: a statistics delivery shows 1000 and 1000
    (the 2 cannot be found by subtraction); a person-level one keeps the exact 998."""
    from kuhr_pipeline.application import load_spec
    from kuhr_pipeline.cohort import select_cohort
    from kuhr_pipeline.source import open_source
    from tests.helpers import staging_in

    rows = [
        {
            "pasient_fnr": person_id(n),
            "when": "2019-03-01T10:00:00",
            "diagnosekoder": ["R74"],
            "pasient_kjonn": 1 if n <= 2 else 2,
        }
        for n in range(1, 1001)
    ] + [{"pasient_fnr": person_id(1), "when": "2020-03-01T10:00:00", "diagnosekoder": ["A04"]}]
    source = open_source(write_source(tmp_path / "source", rows))
    statistics = {
        "data_level": "statistics",
        "cohort.sex": [2],
        "statistics": {"group_by": ["ar"], "measures": ["persons"], "min_cell": 5},
    }
    shown = {}
    for level, changes in (("statistics", statistics), ("pseudonymised", {"cohort.sex": [2]})):
        remove = ["variables"] if level == "statistics" else None
        spec = load_spec(write_spec(spec_dir, changes, name=f"{level}.yaml", remove=remove)).spec
        result = select_cohort(source, spec, bytes(32), staging_in(tmp_path / level))
        table = result.attrition.table()
        shown[level] = dict(zip(table.column("step").to_pylist(), table.column("persons").to_pylist(), strict=True))
        assert result.persons == 998
    assert shown["statistics"]["with an entry claim"] == "1000"
    assert shown["statistics"]["after sex"] == "1000"
    assert shown["statistics"]["after exclusion (the cohort)"] == "1000"
    assert shown["pseudonymised"]["after sex"] == "998"
    assert mask_count(1002, 5, 5) == "1000" and mask_count(1003, 5, 5) == "1005" and mask_count(3, 5, 5) == "<5"


def test_two_recurring_statistics_releases_keep_the_pattern(tmp_path, keys_env, spec_dir, capsys) -> None:
    """Two releases of one statistics application from sources that differ by a few persons:
    every cell hidden in the first is hidden in the second (the pattern, never the values, is kept
    beside the application's deliveries)."""
    import pyarrow.parquet as pq

    from kuhr_pipeline.synth import generate_source

    changes = {
        "application_id": "STAT-1",
        "data_level": "statistics",
        "cohort.entry.diagnoses": {"ICPC-2": ["R74", "A04", "K86"]},
        "statistics": {
            "group_by": ["ar", "pasient_kjonn", {"name": "pasient_alder", "as": "group10"}],
            "measures": ["persons", "claims"],
            "min_cell": 5,
        },
    }
    spec = write_spec(spec_dir, changes, name="STAT-1.yaml", remove=["variables"])
    hidden = []
    for n, persons in enumerate((400, 420)):
        source = generate_source(tmp_path / f"source{n}", persons=persons, from_year=2019, to_year=2020, seed=9).path
        code, out, err = run_cli(["deliver", spec, "--source", source, *(["--again"] if n else [])], capsys)
        assert code == 0, err  # the next quarter's release: the same spec, delivered again on purpose
        plain = tmp_path / f"plain{n}"
        code, _, err = run_cli(["decrypt", out.strip(), "--sk", spec_dir / "recipient.sec", "--out", plain], capsys)
        assert code == 0, err
        table = pq.read_table(plain / "statistics.parquet").to_pylist()
        hidden.append({(r["ar"], r["pasient_kjonn"], r["pasient_alder"]) for r in table if r["suppressed"]})
        cells = {(r["ar"], r["pasient_kjonn"], r["pasient_alder"]) for r in table}
        assert (keys_env["deliveries"] / "STAT-1" / ".suppression-pattern.json").exists()
    assert hidden[0] and (hidden[0] & cells) <= hidden[1]
