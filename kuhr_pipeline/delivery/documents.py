"""The plain-text documents of a delivery: README.md and codebook.md. Never any personal data:
only the spec's metadata, the catalogue's descriptions and the delivered schema."""

from __future__ import annotations

import pyarrow as pa

from kuhr_pipeline.application.model import ApplicationSpec, Criteria
from kuhr_pipeline.catalogue import load_catalogue
from kuhr_pipeline.catalogue.kommuner import KOMMUNE_LISTS_DATE, kommune_lists
from kuhr_pipeline.disclosure.suppression import DOMINANCE_PERCENT
from kuhr_pipeline.extract.generalise import GENERALISATIONS


def codebook(spec: ApplicationSpec, columns: list[tuple[str, str]], schema: pa.Schema | None) -> str:
    """The codebook for the delivered table(s): one section per column, in delivery order."""
    catalogue = load_catalogue()
    lines = [f"# Codebook – {spec.application_id}", "", f"{spec.title}", ""]
    lines += ["## The cohort", "", describe_cohort(spec), ""]
    table = "statistics" if spec.data_level == "statistics" else "claims"
    lines += [f"Columns of the `{table}` table, in order.", ""]
    for name, how in columns:
        lines += _column_lines(spec, name, how, schema)
    if spec.data_level == "statistics" and spec.statistics is not None:
        for measure in spec.statistics.measures:
            m = catalogue.measures[measure]
            lines += [
                f"## `{measure}`",
                "",
                f"- Norsk: {m.no}",
                f"- English: {m.en}",
                f"- Type: `{m.type}`",
                "- Null where the row is suppressed.",
                "",
            ]
        lines += [
            "## `suppressed`",
            "",
            "- English: true where the row's measures are hidden "
            f"(fewer than {spec.statistics.min_cell} persons, one person with more than {DOMINANCE_PERCENT} % of a "
            "delivered sum, or hidden so that no hidden value can be derived from the shown rows "
            "and margins taken together).",
            "- Type: `bool`",
            "",
        ]
    if spec.map_year is not None:
        lines += geography_section(spec.map_year)
    lines += [
        "## Attrition table",
        "",
        "Columns `step`, `persons` (text: a number, or `<N` for small counts) and `bills` "
        "(bills dropped for an identity reason)."
        + (" Every count is rounded to a multiple of 5." if spec.data_level == "statistics" else ""),
        "",
    ]
    return "\n".join(lines)


def _column_lines(spec: ApplicationSpec, name: str, how: str, schema: pa.Schema | None) -> list[str]:
    """One delivered column's section: the catalogue's words, its type and how it was generalised."""
    catalogue = load_catalogue()
    variable = catalogue.variable(name)
    arrow_type = str(schema.field(name).type) if schema is not None and name in schema.names else variable.type
    lines = [
        f"## `{name}`",
        "",
        f"- Norsk: {variable.no}",
        f"- English: {variable.en}",
        f"- Type: `{arrow_type}`",
        f"- Generalisation: {how} – {GENERALISATIONS[how].text}",
        f"- Role: {variable.role.replace('_', ' ')}",
    ]
    if name == "pasient_pseudonym" and spec.pseudonym_form == "lopenr":
        lines.append(
            "- Pseudonym: the project's own løpenummer, as given in its population file: it joins 1:1 with the "
            "project's other registers delivered by the same løpenummer."
        )
    if variable.pattern and how == "exact":
        lines.append(f"- Pattern: `{variable.pattern}`")
    if variable.value_range and how == "exact":
        lines.append(f"- Range: {variable.value_range[0]:g} – {variable.value_range[1]:g}")
    if spec.map_year is not None and GENERALISATIONS[how].geographic:
        lines.append(
            f"- Geography: every number as the kommune that covers it on the map of 1 January {spec.map_year} "
            f"(SSB classification 131 and its changes), so one place is one {how} in every year; "
            '"ukjent" where the recorded number was no kommune in its year. See "Geography" below.'
        )
    if spec.data_level == "statistics":
        lines.append('- A null in this column means "all values" (a margin of the cube).')
    codes = catalogue.codes(variable)
    if codes:
        lines += ["", "| code | meaning |", "|---|---|"] + [f"| `{c}` | {m} |" for c, m in codes.items()]
    lines.append("")
    return lines


def geography_section(map_year: int) -> list[str]:
    """The map, and every kommune that was divided: all its people are counted in one successor."""
    lists = kommune_lists()
    rows = [
        f"| {d.year} | {d.code} {d.name} | {d.largest} {lists.names[d.largest]} | "
        f"{', '.join(f'{o} {lists.names[o]}' for o in d.others)} |"
        for d in lists.divisions()
        if d.year <= map_year
    ]
    restored = [
        f"{old} {lists.names[old]} → {code} {lists.names[code]}"
        for (year, code), old in sorted(lists.restored.items())
        if year <= map_year
    ]
    return [
        "## Geography",
        "",
        f"Kommune and fylke numbers of every year are delivered as on the map of 1 January {map_year}: merged "
        "kommuner as the kommune they became, renumbered ones under their new number, bydel codes as their "
        "kommune. A kommune later divided between several is counted in the successor that received the "
        "largest part of its people"
        + (
            f" (a number recorded before a merger goes to the successor that restored it: {'; '.join(restored)})"
            if restored
            else ""
        )
        + ":",
        "",
        "| year | divided | counted in | other parts |",
        "|---|---|---|---|",
        *(rows or ["| – | none before this map | | |"]),
        "",
        f"Lists: SSB classification 131, version date {KOMMUNE_LISTS_DATE} (kuhr-pipeline's `catalogue/kommuner/`).",
        "",
    ]


def _criteria_words(criteria: Criteria) -> str:
    parts = []
    for system, codes in (criteria.diagnoses_by_system or {}).items():
        parts.append(f"an {system} diagnosis among {', '.join(codes)} (on claims coded in {system})")
    for name, codes in criteria.given.items():
        what = {
            "diagnoses": "a diagnosis (any code system)",
            "praksistyper": "a practice type",
            "takster": "a fee code",
        }
        parts.append(f"{what.get(name, name)} among {', '.join(codes)}")
    return "; and ".join(parts)


def describe_cohort(spec: ApplicationSpec) -> str:
    """The cohort in plain words, for the recipient (README)."""
    cohort = spec.cohort
    lines = [
        f"- Entry claims: claims in the period with {_criteria_words(cohort.entry)}.",
        f"- A person is in the cohort with at least {cohort.min_entry_claims} entry claim(s). Their *index claim* "
        "is their first entry claim in the period (ties: the smallest claim id); its date is the *index date*.",
    ]
    if cohort.washout_days:
        lines.append(
            f"- New cases only: no entry claim in the {cohort.washout_days} days before the index date "
            "(claims before the period were read for this)."
        )
    if cohort.age is not None:
        lines.append(f"- Age {cohort.age.min}–{cohort.age.max} on the index claim.")
    if cohort.sex:
        lines.append(f"- Sex {', '.join(str(s) for s in cohort.sex)} on the index claim.")
    if cohort.bostedskommuner:
        on_map = f" (numbers of the map of {spec.map_year}, in every year)" if spec.map_year is not None else ""
        lines.append(f"- Home kommune among {', '.join(cohort.bostedskommuner)}{on_map} on the index claim.")
    if cohort.exclude is not None:
        window = cohort.exclude.window
        when = (
            f"dated from {window.before} days before to {window.after} days after the index date "
            "(inside or outside the period)"
            if window is not None
            else "in the period"
        )
        lines.append(f"- Excluded: persons with a claim {when} with {_criteria_words(cohort.exclude)}.")
    lines.append(
        "- Claims delivered: every claim of the cohort's persons in the period"
        if spec.claims == "all"
        else "- Claims delivered: the cohort's entry claims in the period"
    )
    if spec.claims_window is not None:
        lines[-1] += (
            f", dated from {spec.claims_window.before} days before to {spec.claims_window.after} days after "
            "the person's index date"
        )
    lines[-1] += "."
    return "\n".join(lines)


def approval_of(spec: ApplicationSpec) -> dict[str, str | None]:
    """The approval the delivery rests on, for the manifest."""
    a = spec.approval
    return {
        "status": a.status,
        "decided": a.decided.isoformat(),
        "valid_until": a.valid_until.isoformat(),
        "rek_reference": a.rek_reference,
        "legal_basis": a.legal_basis,
        "decision_id": a.decision_id,
        "approved_by": a.approved_by,
    }


def describe_approval(spec: ApplicationSpec) -> str:
    """The approval in words, for the README."""
    a = spec.approval
    rek = f", REK reference {a.rek_reference}" if a.rek_reference else ""
    return f"{a.status} on {a.decided}, valid until {a.valid_until}{rek}; legal basis: {a.legal_basis}."


SYNTHETIC_NOTICE = """**SYNTHETIC DATA: NOT A REAL DELIVERY.** Every person, practitioner and claim in this folder
was made up by `kuhr-pipeline dummy` from the application's rules, so that code can be written
and tested before real data arrive (manifest: `"synthetic": true`). The files, columns, types,
labels and codebook are those of the real delivery; no value describes anyone. Results computed
on these data mean nothing.

"""


def readme(spec: ApplicationSpec, delivery_id: str, data_files: list[str], synthetic: bool = False) -> str:
    files = "\n".join(f"- `{f}`" for f in data_files)
    title = f"# SYNTHETIC dummy of KUHR delivery {delivery_id}" if synthetic else f"# KUHR delivery {delivery_id}"
    return f"""{title}

{SYNTHETIC_NOTICE if synthetic else ""}Application: {spec.application_id} – {spec.title}
Applicant: {spec.applicant.institution}
Data level: {spec.data_level}; period {spec.period.from_} – {spec.period.to}; linkage domain {spec.domain}.
Approval: {describe_approval(spec)}

This folder is one delivery from the KUHR register (Kontroll og utbetaling av helserefusjoner),
made by kuhr-pipeline exactly as the approved application specifies. Patients and practitioners
appear only as project-specific pseudonyms (keyed HMAC-SHA256); no national id is included.

## The cohort
{describe_cohort(spec)}

## Files
- `manifest.json`: every file with its size and SHA-256, signed in `manifest.json.sig` (Ed25519).
- `codebook.md`: what each column means.
- Data, encrypted with Crypt4GH to each recipient's key:
{files}

## Verify, then decrypt
1. Check the signature and every file's hash against the data manager's signing public key:
   `kuhr-pipeline verify . --signer-pub signing.pub`
2. Decrypt with your Crypt4GH secret key, either all at once
   `kuhr-pipeline decrypt . --sk YOUR.sec --out plain/`
   or file by file with the reference tool:
   `crypt4gh decrypt --sk YOUR.sec < data/claims.parquet.c4gh > claims.parquet`
   and compare `sha256sum claims.parquet` with the file's `plaintext_sha256` in `manifest.json`.

Keep the decrypted data inside your approved secure environment (for example your TSD project).
"""
