"""The synthetic source: contract, determinism, and the register's rules it must mirror."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pytest

from kuhr_pipeline.errors import KuhrError
from kuhr_pipeline.identity.fodselsnummer import IdKind, IdReason, check_ids
from kuhr_pipeline.source import open_source
from kuhr_pipeline.source.schema import SOURCE_SCHEMA
from kuhr_pipeline.synth import generate_source
from kuhr_pipeline.synth.codes import egenandel_for


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> pa.Table:
    out = tmp_path_factory.mktemp("synth") / "source"
    generate_source(out, persons=3000, from_year=2019, to_year=2024, seed=7)
    return ds.dataset(out, format="parquet", partitioning="hive").to_table()


def test_schema_is_the_contract(tmp_path: Path) -> None:
    out = tmp_path / "s"
    generate_source(out, persons=200, from_year=2023, to_year=2024, seed=1)
    source = open_source(out)  # raises if any column is missing or of the wrong type
    assert source.years == [2023, 2024]
    assert sorted(p.name for p in out.iterdir()) == ["ar=2023", "ar=2024"]
    fragment = next(iter(source.dataset.get_fragments()))
    physical = fragment.physical_schema
    for field in SOURCE_SCHEMA:
        assert physical.field(field.name).type == field.type, field.name


def test_codes_are_stored_with_a_dictionary_as_an_export_would(tmp_path: Path) -> None:
    """Columns with few distinct values (lists of codes too) get a Parquet dictionary, as a
    writer's defaults would give them; those with about one value per claim are stored plain."""
    import pyarrow.parquet as pq

    generate_source(tmp_path / "s", persons=200, from_year=2024, to_year=2024, seed=1)
    file = next((tmp_path / "s").rglob("*.parquet"))
    group = pq.ParquetFile(file).metadata.row_group(0)
    with_dictionary = {
        group.column(i).path_in_schema for i in range(group.num_columns) if group.column(i).has_dictionary_page
    }
    assert {"diagnosekoder.list.element", "takstkoder.list.element", "behandler_praksistype"} <= with_dictionary
    assert not {"regning_id", "pasient_fnr", "behandlingstidspunkt"} & with_dictionary


def test_same_seed_same_data_other_seed_other_data(tmp_path: Path) -> None:
    def table(seed: int, name: str) -> pa.Table:
        generate_source(tmp_path / name, persons=300, from_year=2024, to_year=2024, seed=seed)
        return ds.dataset(tmp_path / name, format="parquet", partitioning="hive").to_table()

    assert table(5, "a").equals(table(5, "b"))
    assert not table(5, "a2").equals(table(6, "c"))


def test_id_quality_shares(synthetic: pa.Table) -> None:
    ids = check_ids(synthetic.column("pasient_fnr"))
    bad = np.isin(ids.reason, (IdReason.MISSING, IdReason.MALFORMED, IdReason.BAD_CHECK_DIGITS)).mean()
    assert 0.002 < bad < 0.008  # 0.4 % configured
    valid = ids.valid
    persons = np.unique(ids.number[valid])
    kinds = check_ids(pa.array([f"{n:011d}" for n in persons])).kind
    d_share = (kinds == IdKind.D_NUMBER).mean()
    assert 0.015 < d_share < 0.05
    assert (kinds == IdKind.H_NUMBER).sum() >= 1


def test_children_pay_no_egenandel(synthetic: pa.Table) -> None:
    children = synthetic.filter(pc.less(synthetic.column("pasient_alder"), 16))
    assert children.num_rows > 100
    assert pc.all(pc.equal(children.column("egenandel"), 0.0)).as_py()
    assert pc.all(pc.equal(children.column("fritaksgrunn"), "B")).as_py()
    adults = synthetic.filter(pc.greater_equal(synthetic.column("pasient_alder"), 16))
    assert pc.sum(adults.column("egenandel")).as_py() > 0


def test_frikort_only_after_the_ceiling(tmp_path: Path) -> None:
    # no bad ids here, so every claim of a person can be found by their id
    generate_source(tmp_path / "s", persons=1500, from_year=2023, to_year=2024, seed=3, bad_id_share=0.0)
    synthetic = ds.dataset(tmp_path / "s", format="parquet", partitioning="hive").to_table()
    ids = check_ids(synthetic.column("pasient_fnr"))
    table = synthetic.filter(pa.array(ids.valid)).append_column("person", pa.array(ids.number[ids.valid]))
    frikort = table.filter(pc.equal(table.column("fritaksgrunn"), "F"))
    assert frikort.num_rows > 0
    checked = 0
    for row in frikort.slice(0, 50).to_pylist():
        year, person, when = row["ar"], row["person"], row["behandlingstidspunkt"]
        earlier = table.filter(
            pc.and_(
                pc.and_(pc.equal(table.column("person"), person), pc.equal(table.column("ar"), year)),
                pc.less_equal(table.column("behandlingstidspunkt"), pa.scalar(when, pa.timestamp("ms"))),
            )
        )
        paid = pc.sum(earlier.column("egenandel")).as_py()
        assert paid >= egenandel_for(year)[3] - 1e-6, (person, year, paid)
        assert row["egenandel"] == 0.0
        checked += 1
    assert checked > 0


def test_kommune_numbering_by_year(synthetic: pa.Table) -> None:
    by_year = {}
    for year in (2019, 2021, 2024):
        kommuner = set(
            synthetic.filter(pc.equal(synthetic.column("ar"), year)).column("pasient_bostedskommune").to_pylist()
        )
        by_year[year] = kommuner
    assert "0219" in by_year[2019] and "3024" not in by_year[2019]  # Bærum before 2020
    assert "3024" in by_year[2021] and "0219" not in by_year[2021]
    assert "3201" in by_year[2024] and "3024" not in by_year[2024]
    assert any("0312" <= k <= "0335" for k in by_year[2024])  # Oslo bydel codes


def test_code_systems_by_practice_type(synthetic: pa.Table) -> None:
    pairs = set(
        zip(
            synthetic.column("behandler_praksistype").to_pylist(),
            synthetic.column("diagnosekodeverk").to_pylist(),
            strict=True,
        )
    )
    for practice in ("FALE", "LEVA", "FYNO", "KINO"):
        assert {s for p, s in pairs if p == practice} == {"ICPC-2"}, practice
    for practice in ("PSNO", "SPOL", "SYKE"):
        assert {s for p, s in pairs if p == practice} == {"ICD-10"}, practice
    assert {s for p, s in pairs if p == "LARO"} == {None}


def test_evening_fee_codes_and_legevakt(synthetic: pa.Table) -> None:
    hours = pc.hour(synthetic.column("behandlingstidspunkt"))
    evening = synthetic.filter(pc.or_(pc.greater_equal(hours, 16), pc.less(hours, 8)))
    share_legevakt = pc.mean(pc.is_in(evening.column("behandler_praksistype"), pa.array(["LEVA", "LEKO"]))).as_py()
    assert share_legevakt > 0.3
    fees = set(pc.list_flatten(evening.column("takstkoder")).to_pylist())
    assert "2ak" in fees


def test_some_bills_are_rejected_with_a_reason(synthetic: pa.Table) -> None:
    avvist = synthetic.filter(pc.equal(synthetic.column("regning_status"), "avvist"))
    assert 0.01 < avvist.num_rows / synthetic.num_rows < 0.04
    assert avvist.column("avvisningsgrunn").null_count == 0
    assert pc.all(pc.equal(avvist.column("refusjon"), 0.0)).as_py()


def test_generator_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    from kuhr_pipeline.errors import KuhrError

    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "file").write_text("keep me")
    with pytest.raises(KuhrError, match="not empty"):
        generate_source(tmp_path / "x", persons=10)
    assert (tmp_path / "x" / "file").read_text() == "keep me"


def test_time_order_sorts_each_year_and_holds_the_same_rows_as_person_order(tmp_path: Path) -> None:
    """`--order time` (the default) writes each year as one file sorted by time, as the register
    exports; `--order person` keeps a person's claims together. The same seed gives the same rows."""
    import pyarrow.parquet as pq

    by_time = generate_source(tmp_path / "t", persons=450, from_year=2023, to_year=2024, seed=2).path
    by_person = generate_source(tmp_path / "p", persons=450, from_year=2023, to_year=2024, seed=2, order="person").path
    for year in (2023, 2024):
        (file,) = (by_time / f"ar={year}").iterdir()
        times = pq.read_table(file, columns=["behandlingstidspunkt"]).column(0)
        assert pc.all(pc.greater_equal(times.slice(1), times.slice(0, len(times) - 1))).as_py()
        assert pc.all(pc.equal(pc.year(times), year)).as_py()
    person_file = next((by_person / "ar=2024").iterdir())
    persons = pq.read_table(person_file, columns=["pasient_fnr"]).column(0).to_pylist()
    runs = sum(1 for a, b in itertools.pairwise(persons) if a != b)
    assert runs < len(set(persons)) * 1.1  # a person's claims lie together

    def rows(folder: Path) -> pa.Table:
        table = ds.dataset(folder, format="parquet", partitioning="hive").to_table()
        return table.sort_by("regning_id")

    assert rows(by_time).equals(rows(by_person))
    assert (
        not rows(by_time)
        .column("regning_id")
        .equals(ds.dataset(by_time, format="parquet", partitioning="hive").to_table().column("regning_id"))
    )  # time order is another order


def test_an_unknown_order_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KuhrError, match="--order"):
        generate_source(tmp_path / "x", persons=10, order="random")


def test_time_order_is_one_stable_sort_of_the_year_in_default_row_groups(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The year is merged from sorted slices a window at a time (bounded memory); the file must be
    what sorting the whole year at once gives: ties in slice order, then in the slice's own order,
    and row groups of the writer's default size. Small slices, windows and row groups make every
    seam occur many times."""
    import pyarrow.parquet as pq

    from kuhr_pipeline.synth import generate, time_order

    monkeypatch.setattr(generate, "PERSONS_PER_SLICE", 150)
    monkeypatch.setattr(time_order, "MERGE_ROWS", 97)
    monkeypatch.setattr(time_order, "ROW_GROUP_ROWS", 500)
    monkeypatch.setattr(time_order, "SPILL_BATCH_ROWS", 64)
    by_time = generate_source(tmp_path / "t", persons=450, from_year=2024, to_year=2024, seed=3).path
    by_person = generate_source(tmp_path / "p", persons=450, from_year=2024, to_year=2024, seed=3, order="person").path

    slices = [pq.read_table(file) for file in sorted((by_person / "ar=2024").iterdir())]
    assert len(slices) == 3
    whole_year_sorted = pa.concat_tables(slices).sort_by("behandlingstidspunkt")
    (file,) = (by_time / "ar=2024").iterdir()
    merged = pq.read_table(file)
    assert merged.num_rows > 20 * 97  # many windows
    assert merged.equals(whole_year_sorted)
    sizes = [pq.ParquetFile(file).metadata.row_group(i).num_rows for i in range(pq.ParquetFile(file).num_row_groups)]
    assert sizes[:-1] == [500] * (len(sizes) - 1) and 0 < sizes[-1] <= 500
    assert sorted(p.name for p in by_time.iterdir()) == ["ar=2024"]  # the sorted runs are gone


def test_a_failed_merge_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kuhr_pipeline.synth import generate

    def full_disk(*_: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(generate, "merge_year", full_disk)
    with pytest.raises(OSError, match="No space"):
        generate_source(tmp_path / "source", persons=300, from_year=2023, to_year=2024)
    assert list(tmp_path.iterdir()) == []
