"""The source reader refuses what does not meet the contract, naming the column and the problem."""

from __future__ import annotations

import threading
import time
from datetime import date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kuhr_pipeline.errors import SourceError
from kuhr_pipeline.source import open_source, scan
from kuhr_pipeline.source.prefetch import prefetched
from kuhr_pipeline.source.scan import decoded, head, scan_pieces
from kuhr_pipeline.source.schema import SOURCE_SCHEMA
from tests.helpers import SOURCE_DEFAULTS, person_id, write_source


def good_source(folder: Path) -> Path:
    return write_source(
        folder,
        [
            {"pasient_fnr": person_id(1), "when": "2020-01-01T10:00:00"},
            {"pasient_fnr": person_id(2), "when": "2021-06-01T10:00:00"},
        ],
    )


def refused(path: Path, *texts: str) -> None:
    with pytest.raises(SourceError) as caught:
        open_source(path)
    message = str(caught.value)
    assert str(path) in message
    for text in texts:
        assert text in message, message


def test_missing_folder(tmp_path: Path) -> None:
    refused(tmp_path / "nope", "does not exist")


def test_a_file_is_not_a_dataset(tmp_path: Path) -> None:
    (tmp_path / "file.parquet").write_bytes(b"x")
    refused(tmp_path / "file.parquet", "not a folder")


def test_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    refused(tmp_path / "empty", "empty")


def test_missing_column(tmp_path: Path) -> None:
    folder = tmp_path / "s" / "ar=2020"
    folder.mkdir(parents=True)
    schema = pa.schema([f for f in SOURCE_SCHEMA if f.name != "egenandel"])
    pq.write_table(schema.empty_table(), folder / "p.parquet")
    refused(tmp_path / "s", "column egenandel", "missing")


def test_wrong_type(tmp_path: Path) -> None:
    folder = tmp_path / "s" / "ar=2020"
    folder.mkdir(parents=True)
    schema = pa.schema([pa.field(f.name, pa.string()) if f.name == "pasient_alder" else f for f in SOURCE_SCHEMA])
    pq.write_table(schema.empty_table(), folder / "p.parquet")
    refused(tmp_path / "s", "column pasient_alder", "has type string, expected int16")


def test_not_partitioned_by_year(tmp_path: Path) -> None:
    folder = tmp_path / "s"
    folder.mkdir()
    pq.write_table(SOURCE_SCHEMA.empty_table(), folder / "p.parquet")
    refused(folder, "(file)", "lies outside an ar=YYYY folder of the source")


def test_corrupt_file_is_a_clear_error(tmp_path: Path) -> None:
    source = good_source(tmp_path / "s")
    victim = next((source / "ar=2021").glob("*.parquet"))
    victim.write_bytes(victim.read_bytes()[:40])
    with pytest.raises(SourceError) as caught:
        opened = open_source(source)
        list(scan(opened, ["pasient_fnr"]))
    assert str(source) in str(caught.value)


def test_scan_prunes_by_period_and_projects(tmp_path: Path) -> None:
    source = open_source(good_source(tmp_path / "s"))
    batches = list(scan(source, ["regning_id", "ar"], (date(2021, 1, 1), date(2021, 12, 31))))
    table = pa.Table.from_batches(batches)
    assert table.column_names == ["regning_id", "ar"]
    assert table.column("ar").to_pylist() == [2021]


def test_scan_keeps_exactly_the_period_whatever_the_row_groups_hold(tmp_path: Path) -> None:
    """Row groups wholly inside the period are read without comparing timestamps; groups that
    straddle its end, or hold a claim filed under the wrong year, are still filtered row by row."""
    stamps = [
        "2021-03-01T10:00",  # group 1: inside
        "2021-04-01T10:00",
        "2021-06-30T23:59",  # group 2: straddles the period's end
        "2021-07-01T00:00",
        "2020-12-31T12:00",  # group 3: a claim filed under the wrong year, then one inside
        "2021-02-01T10:00",
        "2021-09-01T10:00",  # group 4: wholly after the period
        "2021-10-01T10:00",
    ]
    rows = [
        {
            **SOURCE_DEFAULTS,
            "regning_id": f"R{i}",
            "pasient_fnr": person_id(i),
            "behandlingstidspunkt": datetime.fromisoformat(s),
        }
        for i, s in enumerate(stamps)
    ]
    (tmp_path / "s" / "ar=2021").mkdir(parents=True)
    table = pa.Table.from_pylist(rows, schema=SOURCE_SCHEMA)
    pq.write_table(table, tmp_path / "s" / "ar=2021" / "part-0.parquet", row_group_size=2)

    source = open_source(tmp_path / "s")
    kept = pa.Table.from_batches(list(scan(source, ["regning_id"], (date(2021, 1, 1), date(2021, 6, 30)))))
    assert sorted(kept.column("regning_id").to_pylist()) == ["R0", "R1", "R2", "R5"]
    everything = pa.Table.from_batches(list(scan(source, ["regning_id"])))
    assert everything.num_rows == len(stamps)

    # pieces: the row groups that can hold claims of the period, numbered in scan order (group 4
    # lies outside it); asking for some gives exactly their rows again
    first_half = (date(2021, 1, 1), date(2021, 6, 30))

    def pieces(chosen: set[int] | None = None) -> list[tuple[int, list[str]]]:
        batches = scan_pieces(source, ["regning_id"], first_half, pieces=chosen)
        return [(n, b.column("regning_id").to_pylist()) for n, b in batches]

    assert pieces() == [(0, ["R0", "R1"]), (1, ["R2"]), (2, ["R5"])]
    assert pieces({2}) == [(2, ["R5"])]

    first_half = (date(2021, 1, 1), date(2021, 6, 30))
    assert head(source, ["regning_id"], first_half, 3).column("regning_id").to_pylist() == ["R0", "R1", "R2"]
    assert head(source, ["regning_id"], first_half, 10).column("regning_id").to_pylist() == ["R0", "R1", "R2", "R5"]


def test_code_columns_can_be_read_as_dictionaries_and_decoded(tmp_path: Path) -> None:
    """Pass 2 reads code columns dictionary-encoded and decodes the rows it keeps: same values."""
    source = open_source(good_source(tmp_path / "s"))
    for column, coded_type in [
        ("behandler_praksistype", pa.dictionary(pa.int32(), pa.string())),
        ("diagnosekoder", pa.list_(pa.dictionary(pa.int32(), pa.string()))),
    ]:
        plain = pa.Table.from_batches(list(scan(source, [column])))
        coded = pa.Table.from_batches(list(scan(source, [column], as_dictionary={column})))
        assert coded.schema.field(column).type == coded_type
        assert decoded(coded.column(0)).type == plain.schema.field(column).type
        assert decoded(coded.column(0)).to_pylist() == plain.column(0).to_pylist()


def test_prefetch_keeps_order_stays_bounded_and_stops_with_the_consumer() -> None:
    produced: list[int] = []
    finished = threading.Event()

    def items():
        try:
            for i in range(100):
                produced.append(i)
                yield i
        finally:
            finished.set()

    stream = prefetched(items(), depth=2)
    assert [next(stream) for _ in range(3)] == [0, 1, 2]
    time.sleep(0.3)
    assert len(produced) <= 3 + 2 + 1  # taken, queued, and one waiting to be queued
    stream.close()  # the consumer stops early: so does the producer
    assert finished.wait(2)
    assert len(produced) < 100


def test_prefetch_raises_the_producers_error_in_the_consumer() -> None:
    def items():
        yield 1
        raise OSError("disk gone")

    stream = prefetched(items())
    assert next(stream) == 1
    with pytest.raises(OSError, match="disk gone"):
        next(stream)
