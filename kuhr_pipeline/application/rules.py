"""The contract's refusals and advisories that need the catalogue, the clock or the file system."""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import date, timedelta
from pathlib import Path
from typing import Protocol

import yaml
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from kuhr_pipeline.application.model import ApplicationSpec, Criteria, VariableRequest
from kuhr_pipeline.application.yaml_safe import MAX_SPEC_BYTES, parse_yaml
from kuhr_pipeline.catalogue import Catalogue, load_catalogue
from kuhr_pipeline.catalogue.kommuner import kommune_lists
from kuhr_pipeline.delivery.audit import AUDIT_LOG
from kuhr_pipeline.errors import Problem


class _Refuse(Protocol):
    def __call__(self, field: str, problem: str, fix: str = "") -> None: ...


FIRST_DAY_OF_DATA = date(2006, 1, 1)
MAX_YEARS_AHEAD = 10  # a `to` in the future is allowed (recurring deliveries), within reason
# Beside the delivery folders live the audit log and the publish step's lock and staging files.
RESERVED_IDS = frozenset({AUDIT_LOG, "staging", "locks"})
RESERVED_SUFFIXES = (".jsonl", ".lock", ".tmp")
KPR_FROM_YEAR = 2016
MIN_CELL_FLOOR = 3
MAX_APPROVAL_YEARS = 15  # no approval runs longer: a later valid_until is a typo (9999-12-31)


def refusals(spec: ApplicationSpec, where: str, today: date, *, draft: bool = False) -> list[Problem]:
    """Every reason the contract gives for refusing this spec (empty: it may run). `draft`: a draft
    approval is no reason (for an estimate before approval)."""
    problems: list[Problem] = []

    def refuse(field: str, problem: str, fix: str = "") -> None:
        problems.append(Problem(where, field, problem, fix))

    _refuse_approval(spec, today, refuse, draft)
    _refuse_period(spec, today, refuse)
    _refuse_application_id(spec, refuse)
    _refuse_cohort(spec, refuse)
    _refuse_geography(spec, today, refuse)
    _refuse_linkage(spec, today, refuse)
    if spec.data_level == "pseudonymised":
        _refuse_person_level(spec, refuse)
    else:
        _refuse_statistics(spec, refuse)
    return problems


def _refuse_approval(spec: ApplicationSpec, today: date, refuse: _Refuse, draft: bool) -> None:
    approval = spec.approval
    if approval.status != "approved" and not (draft and approval.status == "draft"):
        refuse("approval.status", f"is '{approval.status}'; only an approved application may be delivered")
    if approval.valid_until < today:
        refuse(
            "approval.valid_until",
            f"{approval.valid_until} has passed; no delivery after the approval ends",
            "ask for an extended approval",
        )
    if approval.decided > today:
        refuse("approval.decided", f"{approval.decided} is in the future", "give the date of the decision")
    if approval.decided < FIRST_DAY_OF_DATA:
        refuse("approval.decided", f"{approval.decided} is before KUHR's first data ({FIRST_DAY_OF_DATA})")
    last = today.replace(year=today.year + MAX_APPROVAL_YEARS, day=min(today.day, 28))
    if approval.valid_until > last:
        refuse(
            "approval.valid_until",
            f"{approval.valid_until} is more than {MAX_APPROVAL_YEARS} years ahead",
            "give the approval's real end date",
        )
    if spec.data_level == "pseudonymised" and not approval.rek_reference:
        refuse("approval.rek_reference", "is required for data_level: pseudonymised", "add the REK reference")


def _refuse_period(spec: ApplicationSpec, today: date, refuse: _Refuse) -> None:
    """The period, and the windows that reach beyond it: all within KUHR's data and reason."""
    period = spec.period
    if period.from_ < FIRST_DAY_OF_DATA:
        refuse("period.from", f"{period.from_} is before KUHR's first data ({FIRST_DAY_OF_DATA})")
    if period.from_ > today:
        refuse("period.from", f"{period.from_} is in the future")
    if period.from_ > period.to:
        refuse("period", f"from ({period.from_}) is after to ({period.to})")
    reach = max(spec.cohort.washout_days or 0, _window_before(spec))
    if reach and period.from_ - timedelta(days=reach) < FIRST_DAY_OF_DATA:
        field = (
            "cohort.washout_days"
            if (spec.cohort.washout_days or 0) >= _window_before(spec)
            else "cohort.exclude.window.before"
        )
        refuse(
            field,
            f"reaches {period.from_ - timedelta(days=reach)}, before KUHR's first data ({FIRST_DAY_OF_DATA})",
            "start the period later or shorten the window: the register is not complete before 2006",
        )
    if spec.claims_window is not None and spec.data_level == "statistics":
        refuse("claims_window", "is for person-level deliveries only", "remove it from a statistics application")
    if period.to.year > today.year + MAX_YEARS_AHEAD:
        refuse(
            "period.to",
            f"{period.to} is more than {MAX_YEARS_AHEAD} years ahead",
            "end the period within the approval; recurring deliveries use delivery.schedule",
        )


def _refuse_application_id(spec: ApplicationSpec, refuse: _Refuse) -> None:
    name = spec.application_id.lower()
    if name in RESERVED_IDS or name.endswith(RESERVED_SUFFIXES) or name.startswith(AUDIT_LOG):
        refuse(
            "application_id",
            f"'{spec.application_id}' is a name the pipeline keeps beside deliveries",
            "use the application's own id (e.g. HDS-2026-0042)",
        )


def _refuse_cohort(spec: ApplicationSpec, refuse: _Refuse) -> None:
    _check_criteria(spec.cohort.entry, "cohort.entry", refuse)
    if spec.cohort.exclude is not None:
        _check_criteria(spec.cohort.exclude, "cohort.exclude", refuse)
    for i, code in enumerate(spec.cohort.bostedskommuner or []):
        _check_code(code, f"cohort.bostedskommuner[{i}]", refuse)
    age = spec.cohort.age
    if age is not None and age.min > age.max:
        refuse("cohort.age", f"min ({age.min}) is greater than max ({age.max})")


def _refuse_linkage(spec: ApplicationSpec, today: date, refuse: _Refuse) -> None:
    """The contract's linkage rules that the spec alone decides (the files: `population_file`)."""
    form = spec.pseudonym_form
    if spec.population is None and "entry" not in spec.cohort.model_fields_set:
        refuse("cohort.entry", "is required unless population.file lists the project's persons", "give entry criteria")
    if form == "lopenr" and spec.population is None:
        refuse("identity.pseudonym", "lopenr needs population.file with a lopenr column", "give the population file")
    if form != "hmac" and spec.data_level == "statistics":
        refuse(
            "identity.pseudonym", f"{form} is for person-level deliveries", "leave identity out of a statistics spec"
        )
    identity = spec.identity
    if identity is None:
        return
    if form != "issued" and (identity.bridge_recipients or identity.bridge_destroy_by):
        refuse(
            "identity.bridge_recipients", "only identity.pseudonym: issued has a bridge", "leave the bridge fields out"
        )
    if form == "issued":
        if not identity.bridge_recipients:
            refuse("identity.bridge_recipients", "is required for issued løpenumre", "name the linking party's key")
        if identity.bridge_destroy_by is None or identity.bridge_destroy_by < today:
            refuse(
                "identity.bridge_destroy_by",
                f"{identity.bridge_destroy_by or 'is missing'}: the bridge's destruction date must not have passed",
                "give the date the linking party must destroy the bridge",
            )
        refuse(
            "identity.pseudonym",
            "issued løpenumre (and their bridge package) are not delivered by this version of kuhr-pipeline",
            "use hmac, or lopenr with the project's own løpenumre in the population file",
        )


def _refuse_geography(spec: ApplicationSpec, today: date, refuse: _Refuse) -> None:
    """A map the shipped lists hold, and one that can place every number of the period: a kommune
    merged after the map year has no single kommune on that map."""
    map_year = spec.map_year
    if map_year is None:
        return
    lists = kommune_lists()
    if not lists.first_year <= map_year <= lists.last_year:
        refuse(
            "geography.map",
            f"{map_year} is outside the shipped kommune lists ({lists.first_year}–{lists.last_year})",
            f"choose a year from {lists.first_year} to {lists.last_year} (kuhr_pipeline/catalogue/kommuner/README.md "
            "says how to add a year)",
        )
        return
    last_year = min(spec.period.to, today).year
    mergers = lists.mergers_after(map_year, last_year)
    if mergers:
        latest = mergers[-1][0]
        named = ", ".join(f"{code} {lists.names[code]} ({year})" for year, code in mergers[:3])
        refuse(
            "geography.map",
            f"{map_year} cannot place the kommuner merged after it within the period ({len(mergers)}: {named}, …): "
            f"their people lived in one of several kommuner of {map_year}",
            f"choose a map year of {latest} or later",
        )


def _refuse_person_level(spec: ApplicationSpec, refuse: _Refuse) -> None:
    if spec.variables is None:
        refuse("variables", "is required for data_level: pseudonymised", "list the approved variables")
    if spec.statistics is not None:
        refuse("statistics", "is only for data_level: statistics", "remove it or change data_level")
    _check_variables(spec.requested_variables(), "variables", load_catalogue(), refuse, group_by=False)


def _refuse_statistics(spec: ApplicationSpec, refuse: _Refuse) -> None:
    if spec.statistics is None:
        refuse("statistics", "is required for data_level: statistics", "add group_by, measures and min_cell")
    if spec.variables is not None:
        refuse("variables", "is only for data_level: pseudonymised", "remove it or change data_level")
    if spec.statistics is None:
        return
    catalogue = load_catalogue()
    _check_variables(spec.requested_group_by(), "statistics.group_by", catalogue, refuse, group_by=True)
    for i, measure in enumerate(spec.statistics.measures):
        if measure not in catalogue.measures:
            refuse(
                f"statistics.measures[{i}]",
                f"'{measure}' is not a known measure",
                f"use one of {', '.join(catalogue.measures)}",
            )
    if spec.statistics.min_cell < MIN_CELL_FLOOR:
        refuse(
            "statistics.min_cell",
            f"{spec.statistics.min_cell} is below {MIN_CELL_FLOOR}",
            f"use {MIN_CELL_FLOOR} or more",
        )


def _window_before(spec: ApplicationSpec) -> int:
    exclude = spec.cohort.exclude
    return exclude.window.before if exclude is not None and exclude.window is not None else 0


def _check_code(code: str, field: str, refuse: _Refuse) -> None:
    if "*" in code[:-1]:
        refuse(field, f"'{code}' has a wildcard that is not at the end", "use a prefix such as 'J0*'")


def _check_criteria(criteria: Criteria, prefix: str, refuse: _Refuse) -> None:
    for name, values in criteria.given.items():
        for i, code in enumerate(values):
            _check_code(code, f"{prefix}.{name}[{i}]", refuse)
    for system, codes in (criteria.diagnoses_by_system or {}).items():
        for i, code in enumerate(codes):
            _check_code(code, f"{prefix}.diagnoses.{system}[{i}]", refuse)


def _check_variables(
    requests: list[VariableRequest], prefix: str, catalogue: Catalogue, refuse: _Refuse, *, group_by: bool
) -> None:
    seen: set[str] = set()
    for i, request in enumerate(requests):
        field = f"{prefix}[{i}]"
        variable = catalogue.variables.get(request.name)
        if variable is None:
            refuse(
                field,
                f"'{request.name}' is not in the variable catalogue",
                "see kuhr_pipeline/catalogue/catalogue.yaml",
            )
            continue
        if request.name in seen:
            refuse(field, f"'{request.name}' is listed twice", "list each variable once")
        seen.add(request.name)
        if not variable.deliverable:
            refuse(
                field,
                f"'{request.name}' is a direct identifier and is never delivered",
                "use pasient_pseudonym or behandler_pseudonym",
            )
            continue
        if variable.role == "free_text" and request.free_text != "approved" and not group_by:
            refuse(
                field,
                f"'{request.name}' is free text typed by hand (it may hold names or ids) and needs its own approval",
                f"list it as {{name: {request.name}, free_text: approved}} if the approval covers free text",
            )
        if request.free_text is not None and variable.role != "free_text":
            refuse(f"{field}.free_text", f"'{request.name}' is not a free-text variable", "remove free_text")
        if group_by and not variable.group_by:
            refuse(field, f"'{request.name}' cannot be grouped by", "group by a code list, age, kommune, time or ar")
        if request.as_ is not None and request.as_ not in variable.generalisations:
            refuse(
                f"{field}.as",
                f"'{request.as_}' is not allowed for {request.name}",
                f"use one of {', '.join(variable.generalisations)}",
            )


def population_file(spec: ApplicationSpec, spec_path: Path) -> tuple[Path | None, str | None, list[Problem]]:
    """The population file (beside the spec, like recipient keys) and the SHA-256 of its encrypted
    bytes (a new population is a new delivery), or what is wrong with it. Whether it decrypts and
    has the columns the spec needs is judged where the population key is (identity/population.py)."""
    if spec.population is None:
        return None, None, []
    folder = spec_path.parent.resolve()
    path = (folder / spec.population.file).resolve()
    where = str(spec_path)
    if not path.is_relative_to(folder):
        return (
            None,
            None,
            [Problem(where, "population.file", "lies outside the spec's folder", "keep it beside the spec")],
        )
    if not path.is_file():
        return None, None, [Problem(where, "population.file", f"{path} does not exist", "put the encrypted file there")]
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return path, digest.hexdigest(), []


def borrowed_domain(spec: ApplicationSpec, spec_path: Path) -> list[Problem]:
    """A `linkage_domain` that is another application's id makes this project's pseudonyms equal
    that application's: refused unless that application's own spec shares it (names the same
    linkage_domain), the two projects then being approved to link."""
    domain = spec.linkage_domain
    if domain is None or domain == spec.application_id:
        return []
    for other in sorted([*spec_path.parent.glob("*.yaml"), *spec_path.parent.glob("*.yml")]):
        declared = _declared(other)
        if other.resolve() == spec_path.resolve() or declared.get("application_id") != domain:
            continue
        if declared.get("linkage_domain") == domain:
            return []
        return [
            Problem(
                str(spec_path),
                "linkage_domain",
                f"'{domain}' is the application_id of {other.name}, which does not share it: this project's "
                f"pseudonyms would equal that application's",
                f"give this project a domain of its own, or set linkage_domain: {domain} in {other.name} too if the "
                "two projects are approved to link",
            )
        ]
    return []


def _declared(path: Path) -> dict[str, object]:
    """A spec file's top-level fields, unchecked ({} when it cannot be read as a spec)."""
    try:
        if path.stat().st_size > MAX_SPEC_BYTES:
            return {}
        body = parse_yaml(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError, ValueError, TypeError, RecursionError):
        return {}
    return body if isinstance(body, dict) else {}


def recipient_keys(spec: ApplicationSpec, spec_path: Path) -> tuple[dict[str, bytes], list[Problem]]:
    """Read every recipient's Crypt4GH public key, relative to the spec's folder and inside it."""
    keys: dict[str, bytes] = {}
    problems: list[Problem] = []
    folder = spec_path.resolve().parent
    for i, recipient in enumerate(spec.delivery.recipients):
        field = f"delivery.recipients[{i}].public_key"
        name_problem = _recipient_name_problem(recipient.name, list(keys))
        if name_problem:
            problems.append(Problem(str(spec_path), f"delivery.recipients[{i}].name", *name_problem))
            continue
        key, problem = _recipient_key(recipient.public_key, folder, keys)
        if problem:
            problems.append(Problem(str(spec_path), field, f"'{recipient.public_key}' {problem[0]}", problem[1]))
            continue
        keys[recipient.name] = key
    return keys, problems


def _recipient_key(written: str, folder: Path, earlier: dict[str, bytes]) -> tuple[bytes, tuple[str, str] | None]:
    """One recipient's key, or what is wrong with it (the problem and the fix)."""
    key_path = (folder / written).resolve()
    if not key_path.is_relative_to(folder):
        return b"", ("lies outside the spec's folder", "keep recipient keys beside the spec")
    try:
        key = read_crypt4gh_public_key(key_path)
    except FileNotFoundError:
        return b"", ("does not exist", "put the recipient's Crypt4GH public key there")
    except ValueError as exc:
        return b"", (str(exc), "use a key written by crypt4gh-keygen")
    if not usable_x25519(key):
        return key, (
            "cannot make a shared secret (an all-zero or low-order key)",
            "ask the recipient for the public key crypt4gh-keygen wrote",
        )
    twin = next((name for name, known in earlier.items() if known == key), None)
    if twin is not None:
        return key, (f"is the key of recipient '{twin}' too", "give each recipient their own key")
    return key, None


def _recipient_name_problem(name: str, earlier: list[str]) -> tuple[str, str] | None:
    """A name with spaces around it, or one that differs from an earlier one only by case or
    spaces, reads as one recipient and is two (or the other way round)."""
    if name != name.strip():
        return f"'{name}' has spaces around it", "write the name without them"
    folded = " ".join(name.split()).casefold()
    twin = next((known for known in earlier if " ".join(known.split()).casefold() == folded), None)
    if twin is not None:
        return f"'{name}' differs from recipient '{twin}' only by case or spaces", "give each recipient one name"
    return None


def usable_x25519(key: bytes) -> bool:
    """A key a Crypt4GH header can be encrypted to: X25519 with it gives a shared secret
    (all-zero and low-order points give none, and the encryption would fail after all the work)."""
    try:
        X25519PrivateKey.generate().exchange(X25519PublicKey.from_public_bytes(key))
    except ValueError:
        return False
    return True


def read_crypt4gh_public_key(path: Path) -> bytes:
    """The 32-byte X25519 key of a Crypt4GH public key file; ValueError if it is not one."""
    if not path.is_file():
        raise FileNotFoundError(path)
    if path.stat().st_size > 4096:
        raise ValueError("is not a Crypt4GH public key (too large)")
    lines = [line.strip() for line in path.read_bytes().splitlines() if line.strip()]
    if len(lines) < 3 or lines[0] != b"-----BEGIN CRYPT4GH PUBLIC KEY-----" or not lines[-1].startswith(b"-----END"):
        raise ValueError("is not a Crypt4GH public key")
    try:
        key = base64.b64decode(b"".join(lines[1:-1]), validate=True)
    except ValueError:
        raise ValueError("is not a Crypt4GH public key (bad base64)") from None
    if len(key) != 32:
        raise ValueError("is not a Crypt4GH public key (wrong length)")
    return key


# ICPC-2 codes are a letter and two digits (A01, R74); ICD-10 codes a letter, two digits and up to
# two more characters, written without a dot (J06, J069). A prefix before `*` is the start of one.
_CODE = {"ICPC-2": re.compile(r"[A-Z][0-9]{2}"), "ICD-10": re.compile(r"[A-Z][0-9]{2}[0-9A-Z]{0,2}")}
_PREFIX = {"ICPC-2": re.compile(r"[A-Z][0-9]{0,2}"), "ICD-10": re.compile(r"[A-Z](?:[0-9]{0,2}|[0-9]{2}[0-9A-Z]{1,2})")}


def _fits(system: str, code: str) -> bool:
    if code.endswith("*"):
        return bool(_PREFIX[system].fullmatch(code[:-1]))
    return bool(_CODE[system].fullmatch(code))


def _diagnosis_advisories(spec: ApplicationSpec) -> list[str]:
    out = []
    for where, criteria in (("cohort.entry", spec.cohort.entry), ("cohort.exclude", spec.cohort.exclude)):
        if criteria is None or criteria.diagnoses is None:
            continue
        if isinstance(criteria.diagnoses, list):
            out.append(
                f"{where}.diagnoses is a plain list: it matches ICPC-2 and ICD-10 codes alike (R74 is an "
                "infection in ICPC-2, abnormal serum enzymes in ICD-10); write {ICPC-2: [...], ICD-10: [...]} "
                "to tie the codes to their system."
            )
        for system, codes in (criteria.diagnoses_by_system or {}).items():
            out += [
                f"{where}.diagnoses.{system}: '{code}' does not look like an {system} code"
                for code in codes
                if not _fits(system, code)
            ]
    return out


REFORM_YEARS = (2018, 2020, 2024)  # the reforms that renumbered kommuner and fylker since 2006


def _geography_advisories(spec: ApplicationSpec) -> list[str]:
    """Numbers as recorded mean different places in different years: say where a spec meets that."""
    lists = kommune_lists()
    first, last = spec.period.from_.year, min(spec.period.to.year, lists.last_year)
    out = []
    map_year = spec.map_year
    for i, code in enumerate(spec.cohort.bostedskommuner or []):
        if code.endswith("*"):
            continue
        if map_year is not None:
            if not lists.is_kommune(code, map_year):
                out.append(
                    f"cohort.bostedskommuner[{i}]: '{code}' is no kommune on the map of {map_year}; it matches no one"
                )
            continue
        missing = lists.years_not_a_kommune(code, first, last)
        if missing:
            out.append(
                f"cohort.bostedskommuner[{i}]: '{code}' was no kommune in {_years(missing)}: residents of those "
                f"years are not matched; add geography: {{map: {lists.last_year}}} to match the place in every year"
            )
    if map_year is None:
        reforms = [year for year in REFORM_YEARS if first < year <= last]
        fylke = [name for name, how in spec.plan.pairs if how == "fylke"]
        if fylke and reforms:
            out.append(
                f"{', '.join(fylke)} as fylke over {first}–{last}: the fylke numbers changed in "
                f"{', '.join(map(str, reforms))}, so one place shows as different fylker; add geography: "
                f"{{map: {lists.last_year}}} to deliver one fylke per place"
            )
    return out


def _years(years: list[int]) -> str:
    """2006–2019 for a run of years, each run once."""
    runs: list[list[int]] = []
    for year in years:
        if runs and runs[-1][-1] == year - 1:
            runs[-1].append(year)
        else:
            runs.append([year])
    return ", ".join(f"{r[0]}–{r[-1]}" if len(r) > 1 else str(r[0]) for r in runs)


def advisories(spec: ApplicationSpec) -> list[str]:
    """Warnings that do not stop a delivery."""
    catalogue = load_catalogue()
    out = []
    types = spec.cohort.entry.praksistyper
    primary = catalogue.primary_care_practice_types
    if types and all(t in primary for t in types) and spec.period.from_.year >= KPR_FROM_YEAR:
        out.append(
            "The request covers only primary-care practice types and years from "
            f"{KPR_FROM_YEAR} on: helsedata.no recommends KPR (Kommunalt pasient- og brukerregister) as the source."
        )
    out += _diagnosis_advisories(spec)
    out += _geography_advisories(spec)
    for request in spec.requested_variables():
        if catalogue.variable(request.name).role == "free_text":
            out.append(
                f"variables: {request.name} is free text typed by hand: it may hold names or ids. The leak guard "
                "stops national ids in it; read a sample of the delivered values before release."
            )
    return out
