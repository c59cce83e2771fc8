"""The approved application spec as a pydantic model: shape and types only.

Rules that need the catalogue, the clock or the file system live in `rules.py`, so that this
module stays a faithful picture of the contract's YAML.
"""

from __future__ import annotations

from datetime import date
from functools import cached_property
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

if TYPE_CHECKING:
    from kuhr_pipeline.application.plan import Plan

APPLICATION_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
MAX_MIN_CELL = 1000  # a threshold above this suppresses every national table: surely a typo

NonEmpty = Annotated[str, StringConstraints(min_length=1, max_length=1000)]
Code = Annotated[str, StringConstraints(min_length=1, max_length=32)]


class _Strict(BaseModel):
    """Unknown keys are errors, and no silent type coercion: a typo must not change a delivery."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)


class Applicant(_Strict):
    institution: NonEmpty
    project_leader: NonEmpty


class Approval(_Strict):
    status: Literal["draft", "approved", "rejected", "withdrawn"]
    decided: date
    valid_until: date
    rek_reference: NonEmpty | None = None
    legal_basis: NonEmpty
    decision_id: NonEmpty | None = None  # the decision's reference: into the manifest and the audit log
    approved_by: NonEmpty | None = None  # who decided


class Period(_Strict):
    from_: date = Field(alias="from")
    to: date


CODE_SYSTEMS = ("ICPC-2", "ICD-10")  # the values of `diagnosekodeverk`


class DiagnosesBySystem(_Strict):
    """Diagnosis codes tied to their code system: a claim matches only through the list of its own
    `diagnosekodeverk` (R74 is a respiratory infection in ICPC-2, abnormal serum enzymes in ICD-10)."""

    icpc2: list[Code] | None = Field(default=None, alias="ICPC-2", min_length=1)
    icd10: list[Code] | None = Field(default=None, alias="ICD-10", min_length=1)

    @property
    def by_system(self) -> dict[str, list[str]]:
        return {s: list(codes) for s, codes in zip(CODE_SYSTEMS, (self.icpc2, self.icd10), strict=True) if codes}


class Criteria(_Strict):
    """A claim matches when every given field matches; values in a list are alternatives."""

    diagnoses: Annotated[list[Code], Field(min_length=1)] | DiagnosesBySystem | None = None
    praksistyper: list[Code] | None = Field(default=None, min_length=1)
    takster: list[Code] | None = Field(default=None, min_length=1)
    regning_status: list[Literal["godkjent", "avvist"]] | None = Field(default=None, min_length=1)

    @field_validator("diagnoses")
    @classmethod
    def _a_system_at_least(cls, value: list[str] | DiagnosesBySystem | None) -> list[str] | DiagnosesBySystem | None:
        if isinstance(value, DiagnosesBySystem) and not value.by_system:
            raise ValueError("names no code system; give ICPC-2 and/or ICD-10 with a list of codes each")
        return value

    @property
    def diagnoses_by_system(self) -> dict[str, list[str]] | None:
        """The codes per code system when `diagnoses` is a mapping; None for a plain list or none."""
        return self.diagnoses.by_system if isinstance(self.diagnoses, DiagnosesBySystem) else None

    @property
    def given(self) -> dict[str, list[str]]:
        """The fields that constrain a claim, by name (diagnoses only when a plain list: a mapping is
        matched per code system, see `diagnoses_by_system`)."""
        plain_diagnoses = self.diagnoses if isinstance(self.diagnoses, list) else None
        return {
            name: list(values)
            for name, values in (
                ("diagnoses", plain_diagnoses),
                ("praksistyper", self.praksistyper),
                ("takster", self.takster),
                ("regning_status", self.regning_status),
            )
            if values is not None
        }


class AgeRange(_Strict):
    min: int = Field(default=0, ge=0, le=150)
    max: int = Field(default=150, ge=0, le=150)


MAX_WINDOW_DAYS = 3650


class Window(_Strict):
    """Days before and after a person's index date (both inclusive; a missing side is 0)."""

    before: int = Field(default=0, ge=0, le=MAX_WINDOW_DAYS)
    after: int = Field(default=0, ge=0, le=MAX_WINDOW_DAYS)


class Exclusion(Criteria):
    """Criteria whose claims drop a person: anywhere in the period, or within `window` of the index date."""

    window: Window | None = None


class CohortSpec(_Strict):
    # Required unless the spec gives a population (rules.py): then every listed person's claims
    # count as entry claims, and the index date is their first claim in the period.
    entry: Criteria = Field(default_factory=Criteria)
    min_entry_claims: int = Field(default=1, ge=1, le=10_000)
    washout_days: int | None = Field(default=None, ge=1, le=MAX_WINDOW_DAYS)
    age: AgeRange | None = None
    sex: list[Literal[1, 2, 9]] | None = Field(default=None, min_length=1)
    bostedskommuner: list[Code] | None = Field(default=None, min_length=1)
    exclude: Exclusion | None = None


class VariableRequest(_Strict):
    name: Code
    as_: Code | None = Field(default=None, alias="as")
    # A free-text variable (catalogue role free_text) is delivered only when approved as such. Left
    # out of the dump when absent, so that the specs' canonical hashes stay what they were.
    free_text: Literal["approved"] | None = Field(default=None, exclude_if=lambda value: value is None)


VariableItem = Code | VariableRequest


class StatisticsSpec(_Strict):
    group_by: list[VariableItem] = Field(min_length=1, max_length=8)
    measures: list[Code] = Field(min_length=1)
    min_cell: int = Field(default=5, le=MAX_MIN_CELL)

    @field_validator("measures")
    @classmethod
    def _each_once(cls, measures: list[str]) -> list[str]:
        twice = sorted({m for m in measures if measures.count(m) > 1})
        if twice:
            raise ValueError(f"lists {', '.join(twice)} more than once; list each measure once")
        return measures


class Recipient(_Strict):
    name: NonEmpty
    public_key: NonEmpty


class DeliverySpec(_Strict):
    format: Literal["parquet", "csv"] = "parquet"
    split_by: Literal["none", "year"] = "none"
    recipients: list[Recipient] = Field(min_length=1, max_length=32)
    schedule: Literal["monthly", "quarterly", "yearly"] | None = None

    @field_validator("recipients")
    @classmethod
    def _names_once(cls, recipients: list[Recipient]) -> list[Recipient]:
        names = [r.name for r in recipients]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"name {', '.join(twice)} is given to more than one recipient; name each once")
        return recipients


class PopulationSpec(_Strict):
    """The project's own persons (utvalgsfil): a Crypt4GH file of fnr (and lopenr), identity/population.py."""

    file: NonEmpty


class IdentitySpec(_Strict):
    """How `pasient_pseudonym` is made: keyed HMAC (default), the project's løpenummer from the
    population file, or løpenumre the pipeline issues with a bridge for the linking party."""

    pseudonym: Literal["hmac", "lopenr", "issued"] = "hmac"
    bridge_recipients: list[Recipient] | None = Field(default=None, min_length=1, max_length=8)
    bridge_destroy_by: date | None = None


class Geography(_Strict):
    """Kommune and fylke as on the map of 1 January `map` (catalogue/kommuner.py), or as recorded."""

    map: int | Literal["as_recorded"]

    @property
    def map_year(self) -> int | None:
        return None if self.map == "as_recorded" else self.map


class ApplicationSpec(_Strict):
    application_id: Annotated[str, StringConstraints(pattern=APPLICATION_ID_PATTERN)]
    title: NonEmpty
    applicant: Applicant
    approval: Approval
    data_level: Literal["pseudonymised", "statistics"]
    linkage_domain: Annotated[str, StringConstraints(pattern=APPLICATION_ID_PATTERN)] | None = None
    period: Period
    cohort: CohortSpec
    claims: Literal["all", "entry"] = "all"
    claims_window: Window | None = None
    variables: list[VariableItem] | None = Field(default=None, min_length=1, max_length=100)
    statistics: StatisticsSpec | None = None
    delivery: DeliverySpec
    # Left out of the dump when absent, so that the specs' canonical hashes stay what they were.
    geography: Geography | None = Field(default=None, exclude_if=lambda value: value is None)
    population: PopulationSpec | None = Field(default=None, exclude_if=lambda value: value is None)
    identity: IdentitySpec | None = Field(default=None, exclude_if=lambda value: value is None)

    @field_validator("application_id", "linkage_domain")
    @classmethod
    def _ascii_only(cls, value: str | None) -> str | None:
        # The pattern's classes are ASCII, but guard against look-alikes explicitly all the same.
        if value is not None and not value.isascii():
            raise ValueError("must be ASCII letters, digits, '.', '_' or '-'")
        return value

    @property
    def pseudonym_form(self) -> str:
        """hmac, lopenr or issued (identity.pseudonym)."""
        return self.identity.pseudonym if self.identity else "hmac"

    @property
    def map_year(self) -> int | None:
        """The year of the kommune map numbers are harmonised to; None: as recorded."""
        return self.geography.map_year if self.geography else None

    @property
    def domain(self) -> str:
        """The linkage domain: pseudonyms agree across deliveries of the same domain."""
        return self.linkage_domain or self.application_id

    @cached_property
    def plan(self) -> Plan:
        """The spec resolved against the catalogue, once (application/plan.py)."""
        from kuhr_pipeline.application.plan import make_plan

        return make_plan(self)

    def requested_variables(self) -> list[VariableRequest]:
        return [_as_request(v) for v in self.variables or []]

    def requested_group_by(self) -> list[VariableRequest]:
        return [_as_request(v) for v in (self.statistics.group_by if self.statistics else [])]


def _as_request(item: VariableItem) -> VariableRequest:
    return VariableRequest(name=item) if isinstance(item, str) else item
