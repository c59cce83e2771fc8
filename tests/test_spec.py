"""Every refusal of the application spec contract, the advisory, and the bundled examples."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.helpers import run_cli, write_spec


def refused(
    spec_dir: Path,
    capsys: pytest.CaptureFixture[str],
    changes: dict,
    field: str,
    remove: list[str] | None = None,
    text: str = "",
) -> str:
    path = write_spec(spec_dir, changes, remove=remove)
    code, out, err = run_cli(["check", path], capsys)
    assert code == 2, (out, err)
    assert "Traceback" not in err
    assert str(path) in err
    assert field in err, err
    assert text in err, err
    return err


def test_valid_spec_is_ok(spec_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_spec(spec_dir)
    code, out, _ = run_cli(["check", path], capsys)
    assert code == 0
    assert out.startswith(f"ok: {path}: TEST-0001")


@pytest.mark.parametrize("example", sorted((REPO / "applications").glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_passes_check(example: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["check", example], capsys)
    assert code == 0, err
    assert out.startswith("ok:")


def test_yaml_that_does_not_parse(spec_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = spec_dir / "bad.yaml"
    path.write_text("application_id: [unclosed\n")
    code, _, err = run_cli(["check", path], capsys)
    assert code == 2 and "YAML does not parse" in err and "Traceback" not in err


def test_unknown_key(spec_dir, capsys):
    refused(spec_dir, capsys, {"cohort.entry.diagnosis": ["R74"]}, "cohort.entry.diagnosis", text="not a key")
    err = refused(spec_dir, capsys, {"cohort.washout_day": 30}, "cohort.washout_day", text="not a key")
    assert "did you mean 'washout_days'?" in err
    err = refused(spec_dir, capsys, {"xyzzy": 1}, "xyzzy", text="not a key")
    assert "did you mean" not in err and "remove it or correct its spelling" in err


def test_check_takes_many_files_and_names_each_refusal(spec_dir, capsys):
    good = write_spec(spec_dir, name="good.yaml")
    bad = write_spec(spec_dir, {"application_id": "BAD-2", "perod": 1}, name="bad.yaml")
    worse = write_spec(spec_dir, {"application_id": "BAD-3", "approval.status": "draft"}, name="worse.yaml")
    code, out, err = run_cli(["check", good, bad, worse], capsys)
    assert code == 2 and out.startswith(f"ok: {good}: TEST-0001")
    assert f"{bad}: perod: is not a key" in err and "did you mean 'period'?" in err
    assert f"{worse}: approval.status" in err and "Traceback" not in err


def test_the_version_has_a_short_flag(capsys):
    import kuhr_pipeline

    for flag in ("-V", "--version"):
        code, out, _ = run_cli([flag], capsys)
        assert code == 0 and kuhr_pipeline.__version__ in out


def test_missing_required_field(spec_dir, capsys):
    refused(spec_dir, capsys, {}, "approval.legal_basis", remove=["approval.legal_basis"], text="missing")


def test_wrong_type(spec_dir, capsys):
    refused(spec_dir, capsys, {"cohort.min_entry_claims": "two"}, "cohort.min_entry_claims")


@pytest.mark.parametrize("bad_id", ["../x", "", "has space", "ÅS-1", "-leading"])
def test_application_id_pattern(spec_dir, capsys, bad_id):
    refused(spec_dir, capsys, {"application_id": bad_id}, "application_id")


@pytest.mark.parametrize("status", ["draft", "rejected", "withdrawn"])
def test_status_not_approved(spec_dir, capsys, status):
    refused(spec_dir, capsys, {"approval.status": status}, "approval.status", text=status)


def test_valid_until_in_the_past(spec_dir, capsys):
    refused(spec_dir, capsys, {"approval.valid_until": "2020-01-01"}, "approval.valid_until", text="has passed")


def test_approval_and_period_rules_at_the_edges_of_today(spec_dir, capsys, set_today):
    """The day itself counts: an approval valid until today or decided today, and a period that
    starts today, pass; one day further refuses."""
    set_today(date(2031, 6, 1))
    for changes in (
        {"approval.valid_until": "2031-06-01"},
        {"approval.decided": "2031-06-01"},
        {"period.from": "2031-06-01", "period.to": "2031-12-31"},
    ):
        code, _, err = run_cli(["check", write_spec(spec_dir, changes)], capsys)
        assert code == 0, (changes, err)
    refused(spec_dir, capsys, {"approval.valid_until": "2031-05-31"}, "approval.valid_until", text="has passed")
    refused(spec_dir, capsys, {"approval.decided": "2031-06-02"}, "approval.decided", text="future")
    refused(spec_dir, capsys, {"period.from": "2031-06-02", "period.to": "2031-12-31"}, "period.from", text="future")


def test_decided_in_the_future(spec_dir, capsys):
    refused(spec_dir, capsys, {"approval.decided": "2099-01-01"}, "approval.decided", text="future")


def test_rek_reference_required_for_person_level(spec_dir, capsys):
    refused(spec_dir, capsys, {}, "approval.rek_reference", remove=["approval.rek_reference"])


def test_period_before_2006(spec_dir, capsys):
    refused(spec_dir, capsys, {"period.from": "2005-12-31"}, "period.from", text="2006")


def test_period_from_in_the_future(spec_dir, capsys):
    refused(spec_dir, capsys, {"period.from": "2099-01-01", "period.to": "2099-12-31"}, "period.from", text="future")


def test_period_from_after_to(spec_dir, capsys):
    refused(spec_dir, capsys, {"period.from": "2020-01-01", "period.to": "2019-01-01"}, "period", text="after to")


def test_period_to_in_the_future_is_allowed_within_ten_years(spec_dir, capsys):
    from kuhr_pipeline import clock

    year = clock.today().year
    code, _, err = run_cli(["check", write_spec(spec_dir, {"period.to": f"{year + 10}-12-31"})], capsys)
    assert code == 0, err
    code, _, err = run_cli(["check", write_spec(spec_dir, {"period.to": f"{year + 11}-01-01"})], capsys)
    assert code == 2 and "period.to" in err and "more than 10 years ahead" in err, err


def test_variable_not_in_catalogue(spec_dir, capsys):
    refused(
        spec_dir,
        capsys,
        {"variables": ["pasient_pseudonym", "favourite_colour"]},
        "variables[1]",
        text="not in the variable catalogue",
    )


def test_variable_listed_twice(spec_dir, capsys):
    refused(spec_dir, capsys, {"variables": ["pasient_kjonn", "pasient_kjonn"]}, "variables[1]", text="twice")


@pytest.mark.parametrize("identifier", ["pasient_fnr", "behandler_id"])
def test_direct_identifier(spec_dir, capsys, identifier):
    refused(
        spec_dir, capsys, {"variables": ["pasient_pseudonym", identifier]}, "variables[1]", text="direct identifier"
    )


def test_generalisation_not_allowed(spec_dir, capsys):
    refused(
        spec_dir,
        capsys,
        {"variables": [{"name": "pasient_kjonn", "as": "group5"}]},
        "variables[0].as",
        text="not allowed",
    )


def test_statistics_without_statistics(spec_dir, capsys):
    refused(spec_dir, capsys, {"data_level": "statistics"}, "statistics", text="required")


def test_statistics_with_variables(spec_dir, capsys):
    err = refused(
        spec_dir,
        capsys,
        {"data_level": "statistics", "statistics": {"group_by": ["ar"], "measures": ["persons"], "min_cell": 5}},
        "variables",
        text="only for data_level: pseudonymised",
    )
    assert "statistics" in err


def test_pseudonymised_without_variables(spec_dir, capsys):
    refused(spec_dir, capsys, {}, "variables", remove=["variables"], text="required")


def test_pseudonymised_with_statistics(spec_dir, capsys):
    refused(
        spec_dir,
        capsys,
        {"statistics": {"group_by": ["ar"], "measures": ["persons"]}},
        "statistics",
        text="only for data_level: statistics",
    )


def _statistics(**stats):
    base = {"group_by": ["ar"], "measures": ["persons"], "min_cell": 5}
    return {"data_level": "statistics", "variables": None, "statistics": {**base, **stats}}


def test_unknown_measure(spec_dir, capsys):
    path = write_spec(spec_dir, _statistics(measures=["persons", "median_income"]), remove=["variables"])
    code, _, err = run_cli(["check", path], capsys)
    assert code == 2 and "statistics.measures[1]" in err and "median_income" in err


def test_unknown_group_by(spec_dir, capsys):
    path = write_spec(spec_dir, _statistics(group_by=["ar", "shoe_size"]), remove=["variables"])
    code, _, err = run_cli(["check", path], capsys)
    assert code == 2 and "statistics.group_by[1]" in err


def test_min_cell_below_three(spec_dir, capsys):
    path = write_spec(spec_dir, _statistics(min_cell=2), remove=["variables"])
    code, _, err = run_cli(["check", path], capsys)
    assert code == 2 and "statistics.min_cell" in err


def test_recipient_key_missing(spec_dir, capsys):
    refused(
        spec_dir,
        capsys,
        {"delivery.recipients": [{"name": "X", "public_key": "nope.pub"}]},
        "delivery.recipients[0].public_key",
        text="does not exist",
    )


def test_recipient_key_not_crypt4gh(spec_dir, capsys):
    (spec_dir / "fake.pub").write_text("ssh-rsa AAAA not a crypt4gh key\n")
    refused(
        spec_dir,
        capsys,
        {"delivery.recipients": [{"name": "X", "public_key": "fake.pub"}]},
        "delivery.recipients[0].public_key",
        text="not a Crypt4GH public key",
    )


def test_no_recipients(spec_dir, capsys):
    refused(spec_dir, capsys, {"delivery.recipients": []}, "delivery.recipients")


def test_recipient_key_outside_spec_folder(spec_dir, capsys, tmp_path):
    (tmp_path / "outside.pub").write_text((spec_dir / "recipient.pub").read_text())
    refused(
        spec_dir,
        capsys,
        {"delivery.recipients": [{"name": "X", "public_key": "../outside.pub"}]},
        "delivery.recipients[0].public_key",
        text="outside",
    )


def test_wildcard_not_at_end(spec_dir, capsys):
    refused(spec_dir, capsys, {"cohort.entry.diagnoses": ["R*4"]}, "cohort.entry.diagnoses[0]", text="wildcard")


def test_age_min_above_max(spec_dir, capsys):
    refused(spec_dir, capsys, {"cohort.age": {"min": 10, "max": 5}}, "cohort.age", text="greater than max")


def test_advisory_for_primary_care_only(spec_dir, capsys):
    path = write_spec(spec_dir, {"cohort.entry.praksistyper": ["FALE", "LEVA"]})
    code, out, _ = run_cli(["check", path], capsys)
    assert code == 0
    assert "advisory:" in out and "KPR" in out


def test_no_advisory_with_specialists(spec_dir, capsys):
    path = write_spec(
        spec_dir, {"cohort.entry.praksistyper": ["FALE", "SPES"], "cohort.entry.diagnoses": {"ICPC-2": ["R74"]}}
    )
    code, out, _ = run_cli(["check", path], capsys)
    assert code == 0 and "advisory:" not in out


def test_alias_bomb_refused(spec_dir, capsys):
    path = spec_dir / "bomb.yaml"
    path.write_text('a: &a ["x","x"]\nb: &b [*a,*a]\nc: &c [*b,*b]\n')
    code, _, err = run_cli(["check", path], capsys)
    assert code == 2 and "aliases" in err


def test_huge_file_refused(spec_dir, capsys):
    path = spec_dir / "huge.yaml"
    path.write_text("title: " + "x" * 300_000 + "\n")
    code, _, err = run_cli(["check", path], capsys)
    assert code == 2 and "larger than" in err


def test_deep_nesting_refused(spec_dir, capsys):
    path = spec_dir / "deep.yaml"
    path.write_text("a: " + "[" * 50 + "]" * 50 + "\n")
    code, _, err = run_cli(["check", path], capsys)
    assert code == 2 and "nested deeper" in err


def test_impossible_yaml_date_is_a_refusal(spec_dir, capsys):
    path = spec_dir / "date.yaml"
    path.write_text("approval:\n  decided: 2026-13-45\n")
    code, _, err = run_cli(["check", path], capsys)
    assert code == 2 and "YAML does not parse" in err and "internal error" not in err


def test_free_text_is_delivered_only_when_approved_as_such(spec_dir, capsys):
    base = ["pasient_pseudonym", "pasient_kjonn"]
    refused(
        spec_dir,
        capsys,
        {"variables": [*base, "avvisningsgrunn"]},
        "variables[2]",
        text="'avvisningsgrunn' is free text typed by hand",
    )
    refused(
        spec_dir,
        capsys,
        {"variables": [*base, {"name": "pasient_alder", "free_text": "approved"}]},
        "variables[2].free_text",
        text="'pasient_alder' is not a free-text variable",
    )
    path = write_spec(spec_dir, {"variables": [*base, {"name": "avvisningsgrunn", "free_text": "approved"}]})
    code, out, _ = run_cli(["check", path], capsys)
    assert code == 0 and "advisory: variables: avvisningsgrunn is free text typed by hand" in out


# --- specs `check` once passed that cannot work or mislead (hostile input, third round) ---------


def _raw_key(folder: Path, name: str, key: bytes) -> str:
    import base64

    text = f"-----BEGIN CRYPT4GH PUBLIC KEY-----\n{base64.b64encode(key).decode()}\n-----END CRYPT4GH PUBLIC KEY-----\n"
    (folder / name).write_text(text)
    return name


def test_a_recipient_key_that_makes_no_shared_secret_is_refused(spec_dir, capsys) -> None:
    for name, key in (("zero.pub", bytes(32)), ("low-order.pub", bytes([1]) + bytes(31))):
        _raw_key(spec_dir, name, key)
        refused(
            spec_dir,
            capsys,
            {"delivery.recipients": [{"name": "R1", "public_key": name}]},
            "delivery.recipients[0].public_key",
            text="cannot make a shared secret (an all-zero or low-order key)",
        )


def test_recipient_names_that_differ_only_by_case_or_spaces_are_refused(spec_dir, capsys) -> None:
    from tests.conftest import make_recipient

    make_recipient(spec_dir, "second")
    two = [{"name": "R1", "public_key": "recipient.pub"}, {"name": "r1 ", "public_key": "second.pub"}]
    refused(spec_dir, capsys, {"delivery.recipients": two}, "delivery.recipients[1].name", text="spaces around it")
    two[1]["name"] = "r1"
    refused(spec_dir, capsys, {"delivery.recipients": two}, "delivery.recipients[1].name", text="only by case")


def test_an_application_id_the_deliveries_folder_keeps_is_refused(spec_dir, capsys) -> None:
    refused(
        spec_dir,
        capsys,
        {"application_id": "audit.jsonl.broken-0123456789abcdef"},
        "application_id",
        text="a name the pipeline keeps beside deliveries",
    )


def test_approval_dates_outside_reason_are_refused(spec_dir, capsys) -> None:
    from datetime import timedelta

    from kuhr_pipeline import clock
    from kuhr_pipeline.application.rules import MAX_APPROVAL_YEARS

    assert MAX_APPROVAL_YEARS == 15
    refused(spec_dir, capsys, {"approval.decided": "1900-01-01"}, "approval.decided", text="before KUHR's first data")
    refused(spec_dir, capsys, {"approval.valid_until": "9999-12-31"}, "approval.valid_until", text="15 years ahead")
    today = clock.today()
    last = today.replace(year=today.year + 15, day=min(today.day, 28))
    assert run_cli(["check", write_spec(spec_dir, {"approval.valid_until": last.isoformat()})], capsys)[0] == 0
    late = (last + timedelta(days=1)).isoformat()
    refused(spec_dir, capsys, {"approval.valid_until": late}, "approval.valid_until", text="15 years ahead")


def test_a_linkage_domain_borrowed_from_another_application_is_refused_unless_it_shares_it(spec_dir, capsys):
    """Pseudonyms of one domain are equal: another application's id as this one's domain would give
    this project that one's pseudonyms (854 of 854, found by the hostile tester)."""
    other = write_spec(spec_dir, {"application_id": "OTHER-1"}, name="other.yaml")
    err = refused(
        spec_dir, capsys, {"linkage_domain": "OTHER-1"}, "linkage_domain", text="is the application_id of other.yaml"
    )
    assert "give this project a domain of its own" in err
    write_spec(spec_dir, {"application_id": "OTHER-1", "linkage_domain": "OTHER-1"}, name="other.yaml")
    code, _, err = run_cli(["check", write_spec(spec_dir, {"linkage_domain": "OTHER-1"})], capsys)
    assert code == 0, err  # OTHER-1 shares its domain: the two projects link on purpose
    other.unlink()
    code, _, err = run_cli(["check", write_spec(spec_dir, {"linkage_domain": "SHARED-2026"})], capsys)
    assert code == 0, err  # a domain that is no application's id


def test_every_commands_help_ends_with_an_example() -> None:
    import click

    from kuhr_pipeline.cli import cli

    def commands(group: click.Group, prefix: list[str]):
        for name, command in group.commands.items():
            if isinstance(command, click.Group):
                yield from commands(command, [*prefix, name])
            else:
                yield " ".join([*prefix, name]), command

    without = [name for name, command in commands(cli, []) if "Example" not in (command.help or "")]
    assert without == []
