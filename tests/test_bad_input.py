"""Bad input never changes what is delivered: ids typed with separators, damaged sources, specs
that `check` must refuse, unusable key files, and the messages a user gets. Each bad input is
built here; each case ends in one `error:` line naming the file, and no delivery."""

from __future__ import annotations

import os
import shutil
import stat
from datetime import date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from kuhr_pipeline.quality.leak_guard import holds_fodselsnummer
from kuhr_pipeline.source.schema import SOURCE_SCHEMA
from kuhr_pipeline.synth import generate_source
from tests.conftest import make_recipient
from tests.helpers import SOURCE_DEFAULTS, person_id, run_cli, write_source, write_spec

FIX = "re-export the source; nothing was delivered"
SPEC = {
    "application_id": "BAD-1",
    "period": {"from": "2019-01-01", "to": "2021-12-31"},
    "cohort.entry.diagnoses": {"ICPC-2": ["R74"]},  # a plain list would add an advisory line
}
FROM_2020 = {"period": {"from": "2020-01-01", "to": "2021-12-31"}}  # for a source that starts in 2020


def _rows(n: int, year: int, code: str = "R74") -> list[dict]:
    return [
        {"pasient_fnr": person_id(k), "when": f"{year}-0{1 + k % 9}-1{k % 9}T10:00:00", "diagnosekoder": [code]}
        for k in range(1, n + 1)
    ]


@pytest.fixture
def apps(tmp_path: Path, keys_env: dict[str, Path]) -> Path:
    folder = tmp_path / "applications"
    folder.mkdir()
    make_recipient(folder, "recipient")
    return folder


def _deliver(apps: Path, source: Path, capsys, changes: dict | None = None) -> tuple[int, str, str]:
    spec = write_spec(apps, {**SPEC, **(changes or {})}, name="BAD-1.yaml")
    return run_cli(["deliver", spec, "--source", source], capsys)


def _no_delivery(keys_env: dict[str, Path]) -> bool:
    """No package of BAD-1, prepared or released."""
    folder = keys_env["deliveries"] / "BAD-1"
    return not folder.exists() or not [*folder.glob("2*"), *folder.glob(".pending/2*")]


# --- the leak guard -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "column, written",
    [
        ("avvisningsgrunn", "pasient {a} {b} ukjent"),
        ("avvisningsgrunn", "duplikat av {a}-{b}"),
        ("behandler_spesialitet", "{d}.{m}.{y} {b}"),
        ("avvisningsgrunn", "{d}.{m}.19{y} {b}"),
        ("avvisningsgrunn", "{a}\u2013{b}"),
        ("avvisningsgrunn", "{a}\u00a0{b}"),
        ("avvisningsgrunn", "{a} -- {b}"),
        ("avvisningsgrunn", "{a}_{b}"),
        ("avvisningsgrunn", "{a}:{b}"),
        ("avvisningsgrunn", "fnr {d}{m}19{y} {b}"),
    ],
)
def test_an_id_written_with_separators_is_not_delivered(apps, keys_env, tmp_path, capsys, column, written) -> None:
    victim = person_id(3)
    a, b = victim[:6], victim[6:]
    text = written.format(a=a, b=b, d=victim[:2], m=victim[2:4], y=victim[4:6])
    rows = _rows(12, 2020)
    rows[3][column] = text
    source = write_source(tmp_path / "source", rows)
    free_text = column == "avvisningsgrunn"  # typed by hand: approved as free text
    variables = ["pasient_pseudonym", {"name": column, "free_text": "approved"} if free_text else column]
    code, out, err = _deliver(apps, source, capsys, {"variables": variables, **FROM_2020})
    assert code == 1, err
    assert f"expect_column_values_to_hold_no_fodselsnummer on {column}" in err
    assert victim not in out + err and a not in out + err
    assert _no_delivery(keys_env)
    from tests.leakscan import leaked

    stored = b"".join(p.read_bytes() for p in keys_env["home"].rglob("*") if p.is_file())
    assert text.encode("utf-8") not in stored and leaked({victim}, [keys_env["home"]]) == set()


def test_the_leak_guard_sees_no_id_in_ordinary_values(tmp_path) -> None:
    """False positives on the synthetic source: none in its free text, specialties, practitioner
    ids, nor in amounts, dates, times and kommune numbers written into text. Claim ids
    (`regning_id`) are exempt by their catalogue role: the synthetic ones are 14 digits, whose
    windows can pass both check digits."""
    source = generate_source(tmp_path / "source", persons=2000, from_year=2019, to_year=2020, seed=4).path
    columns = ["avvisningsgrunn", "behandler_spesialitet", "behandler_id", "egenandel", "refusjon"]
    table = ds.dataset(source, format="parquet", partitioning="hive").to_table(
        columns=[*columns, "behandlingstidspunkt", "behandler_praksiskommune"]
    )
    rows = table.to_pylist()
    values = [table.column(c).cast(pa.string()) for c in columns[:3]]
    values.append(
        pa.array(
            [
                f"egenandel {r['egenandel']:.2f} kr, refusjon {r['refusjon']:.2f} kr, "
                f"{r['behandlingstidspunkt']:%d.%m.%Y kl %H:%M}, behandler {r['behandler_id']} "
                f"i {r['behandler_praksiskommune']}"
                for r in rows
            ]
        )
    )
    checked = sum(len(v) for v in values)
    flagged = sum(int(holds_fodselsnummer(v).sum()) for v in values)
    assert checked > 80_000 and flagged == 0


def test_regning_id_is_delivered_not_taken_for_an_id(apps, keys_env, tmp_path, capsys) -> None:
    rows = _rows(12, 2020)
    for k, row in enumerate(rows):
        row["regning_id"] = f"2020{k:010d}"[:14]
    source = write_source(tmp_path / "source", rows)
    code, out, err = _deliver(apps, source, capsys, {"variables": ["pasient_pseudonym", "regning_id"], **FROM_2020})
    assert code == 0, err


# --- a source the pipeline must not deliver from ---------------------------------------------------


def _file(folder: Path, rows: list[dict], name: str = "part-1.parquet") -> Path:
    """A source file written as given (timestamps may be null or in another year than the folder)."""
    full = []
    for i, row in enumerate(rows):
        row = {**SOURCE_DEFAULTS, "regning_id": f"X{i:06d}", **row}
        row["behandlingstidspunkt"] = row.pop("when")
        full.append(row)
    folder.mkdir(parents=True, exist_ok=True)
    index = SOURCE_SCHEMA.get_field_index("behandlingstidspunkt")
    schema = SOURCE_SCHEMA.set(index, SOURCE_SCHEMA.field(index).with_nullable(True))  # a damaged export
    pq.write_table(pa.Table.from_pylist(full, schema=schema), folder / name)
    return folder / name


@pytest.mark.parametrize(
    "defect, expected",
    [
        ("null", "behandlingstidspunkt: is null in 2 claims of 2020; the source contract requires it"),
        ("other year", "behandlingstidspunkt: lies outside 2020 (the file's ar= folder) in 3 claims"),
    ],
)
def test_damaged_timestamps_are_refused_naming_the_file(apps, keys_env, tmp_path, capsys, defect, expected) -> None:
    source = write_source(tmp_path / "source", _rows(12, 2019) + _rows(12, 2020) + _rows(12, 2021))
    when = {"null": [None, None], "other year": [datetime(2019, 5, 1)] * 3}[defect]
    bad = _file(source / "ar=2020", [{"pasient_fnr": person_id(50 + i), "when": w} for i, w in enumerate(when)])
    code, out, err = _deliver(apps, source, capsys)
    assert code == 3, err
    assert err == f"error: {bad}: {expected} (fix: re-export the source; nothing was delivered)\n"
    assert _no_delivery(keys_env)


def test_a_bill_dated_after_now_is_refused(apps, keys_env, tmp_path, capsys, set_today) -> None:
    set_today(date(2021, 6, 1))
    early_2021 = [
        {**row, "when": row["when"].replace("2021-0", "2021-0").replace("-0", "-0", 1)} for row in _rows(12, 2021)
    ]
    for k, row in enumerate(early_2021):
        row["when"] = f"2021-0{1 + k % 4}-10T10:00:00"
    source = write_source(tmp_path / "source", _rows(12, 2019) + _rows(12, 2020) + early_2021)
    bad = _file(source / "ar=2021", [{"pasient_fnr": person_id(61), "when": datetime(2021, 11, 1)}], "part-9.parquet")
    code, out, err = _deliver(apps, source, capsys, {"period": {"from": "2019-01-01", "to": "2020-12-31"}})
    assert code == 0, err  # 2021 is not read for a period that ends in 2020
    code, out, err = _deliver(apps, source, capsys, {"period": {"from": "2019-01-01", "to": "2021-05-31"}})
    assert code == 3, err
    assert err == f"error: {bad}: behandlingstidspunkt: lies in the future in 1 claims (fix: {FIX})\n"


def test_a_year_missing_between_others_is_refused(apps, keys_env, tmp_path, capsys) -> None:
    source = write_source(tmp_path / "source", _rows(12, 2019) + _rows(12, 2021))
    code, out, err = _deliver(apps, source, capsys)
    assert code == 3 and "ar=2020: is missing or holds no claim while the source has years before and after it" in err
    assert _no_delivery(keys_env)


def test_a_year_with_no_claims_between_others_is_a_gap(apps, keys_env, tmp_path, capsys) -> None:
    source = write_source(tmp_path / "source", _rows(12, 2019) + _rows(12, 2021))
    (source / "ar=2020").mkdir()
    pq.write_table(SOURCE_SCHEMA.empty_table(), source / "ar=2020" / "part-0.parquet")  # exported, but empty
    code, out, err = _deliver(apps, source, capsys, {"period": {"from": "2019-01-01", "to": "2021-12-31"}})
    assert code == 3 and "ar=2020: is missing or holds no claim while the source has years before and after it" in err
    assert _no_delivery(keys_env)


def test_a_period_before_the_sources_first_year_is_refused_and_check_advises(
    apps, keys_env, tmp_path, capsys, monkeypatch
) -> None:
    """A period from 2006 on a source that starts in 2019 would deliver 2019 on without a word."""
    source = write_source(tmp_path / "source", _rows(12, 2019) + _rows(12, 2020))
    early = {"period": {"from": "2018-06-01", "to": "2020-12-31"}}
    code, out, err = _deliver(apps, source, capsys, early)
    assert code == 3 and "period.from: 2018-06-01 is in 2018, but the source's first year with claims is 2019" in err
    assert "start the period in 2019" in err and "Traceback" not in err
    assert _no_delivery(keys_env)
    monkeypatch.setenv("KUHR_SOURCE", str(source))
    code, out, _ = run_cli(["check", apps / "BAD-1.yaml"], capsys)
    assert code == 0 and "advisory: period.from 2018-06-01 is in 2018" in out and "deliver refuses it" in out
    code, out, err = _deliver(apps, source, capsys, {"period": {"from": "2019-01-01", "to": "2020-12-31"}})
    assert code == 0, err  # from the first year on: delivered


def test_a_symbolic_link_in_the_source_is_refused(apps, keys_env, tmp_path, capsys) -> None:
    source = write_source(tmp_path / "source", _rows(12, 2019) + _rows(12, 2020))
    (source / "ar=2020" / "loop").symlink_to("..")
    code, out, err = _deliver(apps, source, capsys)
    assert code == 3 and err.startswith(f"error: {source / 'ar=2020' / 'loop'}: (file): is a symbolic link"), err
    assert _no_delivery(keys_env)


def test_a_file_outside_its_year_folder_is_refused(apps, keys_env, tmp_path, capsys) -> None:
    source = write_source(tmp_path / "source", _rows(12, 2019) + _rows(12, 2020))
    stray = source / "ar=2020" / "extra" / "part-0.parquet"
    stray.parent.mkdir()
    shutil.copy(source / "ar=2019" / "part-0.parquet", stray)
    code, out, err = _deliver(apps, source, capsys)
    assert code == 3 and f"error: {stray}: (file): lies outside an ar=YYYY folder" in err, err


@pytest.mark.parametrize("claims", ["all", "entry"])
def test_a_year_exported_twice_is_refused_naming_both_files(apps, keys_env, tmp_path, capsys, claims) -> None:
    """The same claims twice (a second copy of 2020's file beside the first): with min_entry_claims 2
    they would let a person with one entry claim in, and double the delivered claims."""
    source = write_source(tmp_path / "source", _rows(12, 2019) + _rows(12, 2020))
    again = source / "ar=2020" / "part-1.parquet"
    shutil.copy(source / "ar=2020" / "part-0.parquet", again)
    code, out, err = _deliver(apps, source, capsys, {"claims": claims, "cohort.min_entry_claims": 2})
    assert code == 3, err
    (line,) = err.strip().splitlines()[-1:]
    assert (
        f"{source / 'ar=2020' / 'part-0.parquet'}, {again}: regning_id: 12 ids are used by more than one claim" in line
    )
    assert "fix: re-export the source; nothing was delivered" in line and "Traceback" not in err
    assert _no_delivery(keys_env)
    again.unlink()  # the source repaired: delivered
    code, out, err = _deliver(apps, source, capsys, {"claims": claims, "cohort.min_entry_claims": 2})
    assert code == 0, err


def test_a_claim_twice_is_refused_even_outside_the_cohort(apps, keys_env, tmp_path, capsys) -> None:
    """Anywhere in the years a run reads (source contract), not only among the cohort's claims."""
    outsider = {"pasient_fnr": person_id(99), "when": "2020-05-05T10:00:00", "diagnosekoder": ["A04"]}
    source = write_source(
        tmp_path / "source", _rows(12, 2019) + _rows(12, 2020) + [{**outsider, "regning_id": "R000015"}]
    )
    code, out, err = _deliver(apps, source, capsys)
    assert code == 3 and "regning_id: 1 ids are used by more than one claim (e.g. 'R000015')" in err, err
    assert _no_delivery(keys_env)


@pytest.mark.parametrize(
    "ids, repeated",
    [
        (["R0001", "R0002", "R0003"], []),
        (["R0001", "R0002", "R0001"], ["R0001"]),  # one length: settled by hashes, then on the ids
        (["R1", "R0002", "R003", "R1", "R003", "R003"], ["R003", "R1"]),  # lengths vary
        (["R1", "R0002", "R003", "R01", "R10"], []),
    ],
)
@pytest.mark.parametrize("parts", [1, 3])
def test_repeated_claim_ids_are_found_whatever_their_lengths(tmp_path, monkeypatch, ids, repeated, parts) -> None:
    """Found in every row group of a year, and when the year is checked in parts (a year too
    large for its hashes to be held at once)."""
    from kuhr_pipeline.source import claim_ids, open_source

    rows = [{**row, "regning_id": i} for row, i in zip(_rows(len(ids), 2020), ids, strict=True)]
    source = open_source(write_source(tmp_path / "source", rows, row_group_size=2))
    monkeypatch.setattr(claim_ids, "MAX_HASHES", -(-len(ids) // parts))
    found = claim_ids.repeated_claim_ids(source, [2020])
    assert sorted(i.decode() for i in found.to_pylist()) == repeated


def test_years_found_clean_are_not_read_again_until_their_files_change(tmp_path, monkeypatch) -> None:
    """The record of clean years is trusted for that version of their files only, and only when
    this deployment's key signed it."""
    from kuhr_pipeline.errors import SourceError
    from kuhr_pipeline.source import claim_ids, open_source
    from kuhr_pipeline.source.claim_ids import CheckedYears, require_distinct_claim_ids, years_version

    folder = write_source(tmp_path / "source", _rows(6, 2019) + _rows(6, 2020))
    source = open_source(folder)
    checked = CheckedYears(tmp_path / "checks", b"k" * 32)
    require_distinct_claim_ids(source, 2019, 2020, checked)
    assert checked.holds(years_version(source, [2019, 2020]))
    assert not checked.holds(years_version(source, [2020]))  # another set of years: its own check
    reads: list[list[int]] = []
    monkeypatch.setattr(
        claim_ids, "repeated_claim_ids", lambda s, years: reads.append(years) or pa.array([], pa.binary())
    )
    require_distinct_claim_ids(source, 2019, 2020, checked)
    assert reads == []  # both years unchanged: nothing read
    require_distinct_claim_ids(source, 2020, 2020, checked)
    assert reads == [[2020]]

    table = pq.read_table(folder / "ar=2020" / "part-0.parquet")
    pq.write_table(
        table.set_column(table.schema.get_field_index("regning_id"), "regning_id", pa.array(["R000006"] * 6)),
        folder / "ar=2020" / "part-0.parquet",
    )
    monkeypatch.undo()
    with pytest.raises(SourceError, match="1 ids are used by more than one claim"):
        require_distinct_claim_ids(open_source(folder), 2019, 2020, checked)

    repaired = folder / "ar=2020" / "part-0.parquet"
    pq.write_table(table, repaired)
    other_key = CheckedYears(tmp_path / "checks", b"x" * 32)
    assert not other_key.holds(years_version(open_source(folder), [2019, 2020]))  # another key: not taken
    record = next((tmp_path / "checks").glob("2019-2020-*.json"))
    record.write_text(record.read_text().replace('"claims": 12', '"claims": 13'))
    assert not checked.holds(years_version(open_source(folder), [2019, 2020]))  # altered: not taken


@pytest.mark.parametrize("parts", [1, 3])
def test_a_bill_redated_into_another_year_is_refused_across_the_years_a_run_reads(tmp_path, monkeypatch, parts) -> None:
    """A claim of 2019 copied into 2020 with a new date and the same id (the hostile tester's
    365-day shift): each year alone is clean; the years together are not."""
    from kuhr_pipeline.errors import SourceError
    from kuhr_pipeline.source import claim_ids, open_source
    from kuhr_pipeline.source.claim_ids import CheckedYears, require_distinct_claim_ids

    earlier = _rows(6, 2019)
    redated = {**earlier[2], "when": "2020-06-01T10:00:00", "regning_id": "R000002"}
    source = open_source(write_source(tmp_path / "source", earlier + _rows(6, 2020)[:5] + [redated], row_group_size=2))
    monkeypatch.setattr(claim_ids, "MAX_HASHES", -(-12 // parts))
    checked = CheckedYears(tmp_path / "checks", b"k" * 32)
    require_distinct_claim_ids(source, 2020, 2020, checked)  # a run of 2020 alone reads no repeat
    with pytest.raises(SourceError, match=r"1 ids are used by more than one claim \(e.g. 'R000002'\)") as refused:
        require_distinct_claim_ids(source, 2019, 2020, checked)
    assert "ar=2019" in str(refused.value) and "ar=2020" in str(refused.value)  # both files named


# --- specs that check must refuse -------------------------------------------------------------------


def test_a_key_given_twice_is_refused(spec_dir, capsys) -> None:
    spec = write_spec(spec_dir, {"claims": "all"}, name="twice.yaml")
    spec.write_text(spec.read_text() + "claims: entry\n")
    code, out, err = run_cli(["check", spec], capsys)
    assert code == 2 and "key 'claims' is given twice" in err, err


@pytest.mark.parametrize(
    "changes, field, words",
    [
        ({"application_id": "audit.jsonl"}, "application_id", "is a name the pipeline keeps beside deliveries"),
        ({"period": {"from": "2019-01-01", "to": "9999-12-31"}}, "period.to", "years ahead"),
        (
            {
                "data_level": "statistics",
                "variables": None,
                "statistics": {"group_by": ["ar"], "measures": ["persons"], "min_cell": 10**30},
            },
            "statistics.min_cell",
            "less than or equal to 1000",
        ),
        (
            {
                "data_level": "statistics",
                "variables": None,
                "statistics": {"group_by": ["ar"], "measures": ["persons", "persons"]},
            },
            "statistics.measures",
            "lists persons more than once",
        ),
        (
            {
                "delivery.recipients": [
                    {"name": "A", "public_key": "recipient.pub"},
                    {"name": "A", "public_key": "other.pub"},
                ]
            },
            "delivery.recipients",
            "name A is given to more than one recipient",
        ),
        (
            {
                "delivery.recipients": [
                    {"name": "A", "public_key": "recipient.pub"},
                    {"name": "B", "public_key": "recipient.pub"},
                ]
            },
            "delivery.recipients[1].public_key",
            "is the key of recipient 'A' too",
        ),
    ],
)
def test_specs_check_refuses(spec_dir, capsys, changes, field, words) -> None:
    make_recipient(spec_dir, "other")
    spec = write_spec(
        spec_dir, changes, name="bad.yaml", remove=["variables"] if changes.get("variables", 1) is None else None
    )
    code, out, err = run_cli(["check", spec], capsys)
    assert code == 2, err
    assert f"{field}" in err and words in err, err
    assert "Traceback" not in err


# --- key files --------------------------------------------------------------------------------------


def test_a_key_that_is_a_pipe_or_a_device_is_refused_at_once(apps, keys_env, tmp_path, capsys, monkeypatch) -> None:
    source = write_source(tmp_path / "source", _rows(12, 2019))
    fifo = tmp_path / "key.fifo"
    os.mkfifo(fifo)
    for bad in (fifo, Path("/dev/zero")):
        monkeypatch.setenv("KUHR_PSEUDONYM_KEY_FILE", str(bad))
        code, out, err = _deliver(apps, source, capsys)
        assert code == 3 and err == (
            f"error: {bad}: KUHR_PSEUDONYM_KEY_FILE: is not a regular file (a pipe, a device or a socket) "
            "(fix: point at the key file)\n"
        ), err
    monkeypatch.setenv("KUHR_SIGNING_KEY_FILE", str(fifo))
    code, out, err = run_cli(["verify", tmp_path, "--signer-pub", fifo], capsys)
    assert code == 1 and "is not a regular file" in err


def test_a_key_open_to_others_gets_a_warning(apps, keys_env, tmp_path, capsys) -> None:
    from kuhr_pipeline.identity import keys

    keys._warn_open_to_others.cache_clear()
    os.chmod(keys_env["master"], 0o644)
    source = write_source(tmp_path / "source", _rows(12, 2019))
    code, out, err = _deliver(apps, source, capsys)
    assert code == 0, err
    assert f"warning: {keys_env['master']}: KUHR_PSEUDONYM_KEY_FILE: mode 644 lets group or others read the key" in err
    os.chmod(keys_env["signing_pub"], 0o644)  # a public key is meant to be read: no warning
    code, _, err = run_cli(["verify", out.strip(), "--prepared", "--signer-pub", keys_env["signing_pub"]], capsys)
    assert code == 0 and "warning" not in err, err


# --- messages ---------------------------------------------------------------------------------------


def test_decrypt_never_overwrites_and_writes_owner_only(apps, keys_env, tmp_path, capsys) -> None:
    source = write_source(tmp_path / "source", _rows(12, 2019))
    code, out, err = _deliver(apps, source, capsys)
    assert code == 0, err
    delivered = out.strip()
    secret = apps / "recipient.sec"
    plain = tmp_path / "plain"
    args = ["decrypt", delivered, "--sk", secret, "--signer-pub", keys_env["signing_pub"], "--out"]
    code, out, err = run_cli([*args, plain], capsys)
    assert code == 0, err
    assert stat.S_IMODE((plain / "claims.parquet").stat().st_mode) == 0o600
    before = (plain / "claims.parquet").read_bytes()
    code, out, err = run_cli([*args, plain], capsys)
    assert code == 1 and "already holds" in err and "nothing was overwritten" in err and err.count("\n") == 1
    assert (plain / "claims.parquet").read_bytes() == before
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    code, out, err = run_cli([*args, a_file], capsys)
    assert code == 1 and err == f"error: {a_file}: --out: is a file, not a folder (fix: give a new or empty folder)\n"
    other = tmp_path / "other"
    make_recipient(other.parent, "stranger")
    capsys.readouterr()
    code, out, err = run_cli(
        [
            "decrypt",
            delivered,
            "--sk",
            tmp_path / "stranger.sec",
            "--signer-pub",
            keys_env["signing_pub"],
            "--out",
            tmp_path / "p2",
        ],
        capsys,
    )
    assert code == 1 and err.count("\n") == 1 and "cannot be decrypted with this key" in err, err
    code, out, err = run_cli(["verify", delivered, "--signer-pub", tmp_path / "a-file"], capsys)
    assert code == 1 and "--signer-pub: is not a PEM public key" in err


def test_a_full_disk_under_staging_is_one_line(apps, keys_env, tmp_path, capsys) -> None:
    import subprocess

    staging = keys_env["home"] / "staging"
    staging.mkdir()
    if subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(staging)], capture_output=True
    ).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        source = generate_source(tmp_path / "source", persons=2000, from_year=2019, to_year=2019, seed=2).path
        changes = {"period": {"from": "2019-01-01", "to": "2019-12-31"}, "cohort.entry.diagnoses": ["R*", "A*", "K*"]}
        code, out, err = _deliver(apps, source, capsys, changes)
        assert code == 1, err
        last = err.strip().splitlines()[-1]
        assert last.startswith("error: ") and "Traceback" not in err, err
        assert "step cohort failed: " in last and "DAGSTER_HOME: no space left for the run's staging" in last, last
        assert list(staging.rglob("*")) == []  # the run's staging removed
        assert _no_delivery(keys_env)
    finally:
        subprocess.run(["umount", "-l", str(staging)], check=False)


def _source_with_a_null(tmp_path: Path, column: str) -> tuple[Path, Path]:
    """A source whose third claim of 2020 has `column` null (the file's schema made to allow it)."""
    source = write_source(tmp_path / "source", _rows(12, 2019) + _rows(12, 2020))
    victim = sorted((source / "ar=2020").glob("*.parquet"))[0]
    table = pq.read_table(victim)
    index = table.schema.get_field_index(column)
    values = table.column(column).to_pylist()
    values[2] = None
    field = table.schema.field(index).with_nullable(True)
    pq.write_table(table.set_column(index, field, pa.array(values, field.type)), victim)
    return source, victim


@pytest.mark.parametrize("column", ["behandler_id", "regning_status", "pasient_kjonn", "egenandel"])
def test_a_null_where_the_contract_requires_a_value_is_a_source_refusal(apps, keys_env, tmp_path, capsys, column):
    """One sentence, exit 3, naming the file, the column, the year and the count; never an
    internal error from deep in a pass."""
    source, victim = _source_with_a_null(tmp_path, column)
    code, out, err = _deliver(apps, source, capsys)
    assert code == 3 and out == "", err
    assert (
        err == f"error: {victim}: {column}: is null in 1 claims of 2020; the source contract requires it (fix: {FIX})\n"
    )
    assert _no_delivery(keys_env)


@pytest.mark.parametrize("column", ["takstkoder", "diagnosekoder"])
def test_a_null_list_is_a_source_refusal_not_an_internal_error(apps, keys_env, tmp_path, capsys, column) -> None:
    source, _ = _source_with_a_null(tmp_path, column)
    code, out, err = _deliver(apps, source, capsys)
    assert code == 3 and out == "", err
    assert f"{source / 'ar=2020'}: {column}: is null in 1 claims of 2020; the source contract requires a list" in err
    assert "internal error" not in err and "ValueError" not in err and _no_delivery(keys_env)


def _source_with_timestamps(tmp_path: Path, stamps: pa.Array) -> Path:
    """A source whose 2020 file holds `stamps` as its timestamps (a unit finer than ms allowed)."""
    source = write_source(tmp_path / "source", _rows(12, 2019) + _rows(12, 2020))
    victim = source / "ar=2020" / "part-0.parquet"
    table = pq.read_table(victim)
    index = table.schema.get_field_index("behandlingstidspunkt")
    pq.write_table(table.set_column(index, pa.field("behandlingstidspunkt", stamps.type), stamps), victim)
    return source


def test_nanosecond_timestamps_are_read_and_a_null_among_them_is_a_source_refusal(
    apps, keys_env, tmp_path, capsys
) -> None:
    """Sub-millisecond parts are allowed (the contract: ms or finer) and cut to the millisecond; a
    null timestamp is refused as any null is: one sentence, exit 3, not ArrowInvalid."""
    fine = [1_583_020_800_000_000_000 + k * 86_400_123_456_789 for k in range(12)]  # 2020-03-01 on
    source = _source_with_timestamps(tmp_path, pa.array(fine, pa.timestamp("ns")))
    code, out, err = _deliver(apps, source, capsys)
    assert code == 0, err
    with_null = _source_with_timestamps(tmp_path / "null", pa.array([None, *fine[1:]], pa.timestamp("ns")))
    code, out, err = _deliver(apps, with_null, capsys, {"application_id": "BAD-2"})
    assert code == 3 and out == "", err
    assert "behandlingstidspunkt" in err and "1 claim" in err and "internal error" not in err, err
    assert "ArrowInvalid" not in err and "Traceback" not in err
