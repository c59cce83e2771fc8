"""The disclosure report for person-level extracts: smallest class, persons at risk, worst combination."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from kuhr_pipeline.disclosure.kanon import EquivalenceClasses, quasi_identifiers


def _hand_built_extract() -> pa.Table:
    # six women born 1990 in fylke 03, and one man born 1950 in fylke 46: he is alone in his class
    people = [("a" * 32, 2, 1990, "03")] * 1 + [(f"{i:032x}", 2, 1990, "03") for i in range(1, 6)]
    people += [("f" * 32, 1, 1950, "46")]
    return pa.table(
        {
            "pasient_pseudonym": [p[0] for p in people],
            "pasient_kjonn": pa.array([p[1] for p in people], pa.int8()),
            "pasient_fodselsar": pa.array([p[2] for p in people], pa.int16()),
            "pasient_bostedskommune": [p[3] for p in people],
            "egenandel": [0.0] * len(people),
        }
    )


def test_report_on_a_hand_built_extract(tmp_path: Path) -> None:
    table = _hand_built_extract()
    path = tmp_path / "claims.parquet"
    pq.write_table(table, path)
    columns = table.column_names
    assert quasi_identifiers(columns) == ["pasient_kjonn", "pasient_fodselsar", "pasient_bostedskommune"]
    classes = EquivalenceClasses(columns)
    classes.add(pq.read_table(path))
    report = classes.report()
    assert report["persons"] == 7
    assert report["smallest_equivalence_class"] == 1
    assert report["persons_in_classes_smaller_than_5"] == 1
    assert report["persons_isolated_by_that_combination"] == 1
    assert report["most_identifying_combination"] == ["pasient_kjonn"]
    assert pq.read_table(path).equals(table)  # report only: the data are not altered


def test_report_gathered_piece_by_piece_equals_the_report_of_the_whole() -> None:
    """The extract step feeds the report each table as it is written; a person's claims can fall
    in different pieces, and repeated claims must not count a person twice."""
    table = _hand_built_extract()
    whole = EquivalenceClasses(table.column_names)
    whole.add(table)
    pieces = EquivalenceClasses(table.column_names)
    for piece in (table.slice(0, 3), table.slice(2, 5), table.slice(5)):  # rows 2–4 twice
        pieces.add(piece)
    assert pieces.report() == whole.report()
    assert pieces.report()["persons"] == 7


def test_no_report_without_pseudonyms_or_quasi_identifiers() -> None:
    classes = EquivalenceClasses(["egenandel", "refusjon"])
    classes.add(pa.table({"egenandel": [1.0], "refusjon": [2.0]}))
    assert classes.report() == {"quasi_identifiers": [], "note": "no person-level quasi-identifiers delivered"}
