"""Each person's first entry claim and count of entry claims, gathered batch by batch in pass 1.

The contract's first entry claim is the earliest, ties broken by the smallest `regning_id`.
Decoding `regning_id` for every claim, only for the rare ties, cost a sixth of pass 1; so pass 1
keeps every entry claim at a person's earliest time with its place in the scan (a locator:
piece and row), and `break_ties` reads `regning_id` back for the tied claims only, from the
pieces that hold them.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pyarrow as pa

from kuhr_pipeline.application.model import CohortSpec
from kuhr_pipeline.source.scan import Source, changed_while_read, decoded, scan_pieces

_SCHEMA = pa.schema(
    [
        ("person", pa.int32()),
        ("behandlingstidspunkt", pa.timestamp("ms")),
        ("locator", pa.int64()),
        ("pasient_alder", pa.int16()),
        ("pasient_kjonn", pa.int8()),
        ("pasient_bostedskommune", pa.string()),
        ("entry_claims", pa.int64()),
    ]
)
_PIECE_SHIFT = 32  # locator = piece << 32 | row within the piece


def first_claim_columns(cohort_spec: CohortSpec) -> list[str]:
    """What is kept of each person's first entry claim: the age always (the cohort's age picture),
    sex and residence only when a criterion asks (two columns fewer to decode in pass 1)."""
    return [
        "pasient_alder",
        *(["pasient_kjonn"] if cohort_spec.sex is not None else []),
        *(["pasient_bostedskommune"] if cohort_spec.bostedskommuner is not None else []),
    ]


def entry_claims(
    batch: pa.RecordBatch, rows: np.ndarray, persons: np.ndarray, piece: int, first_row: int, columns: list[str]
) -> pa.Table:
    """A batch's entry claims (`rows`, of `persons`) as the table `reduce_entry` reduces;
    `first_row` is the batch's first row's place in its piece."""
    taken = pa.array(rows)
    return pa.table(
        {
            "person": pa.array(persons, pa.int32()),
            "behandlingstidspunkt": batch.column("behandlingstidspunkt").take(taken),
            "locator": pa.array((np.int64(piece) << _PIECE_SHIFT) | (first_row + rows.astype(np.int64))),
            **{c: decoded(batch.column(c).take(taken)) for c in columns},
            "entry_claims": pa.array(np.ones(len(rows), dtype=np.int64)),
        }
    )


def no_entry_claims(columns: list[str]) -> pa.Table:
    return _SCHEMA.empty_table().select(["person", "behandlingstidspunkt", "locator", *columns, "entry_claims"])


def reduce_entry(table: pa.Table) -> pa.Table:
    """Per person, the entry claims at their earliest time (one, unless claims tie), the first of
    them carrying the person's number of entry claims and the others 0, so that reducing the
    result again keeps the counts right."""
    if table.num_rows == 0:
        return table
    table = table.sort_by([("person", "ascending"), ("behandlingstidspunkt", "ascending"), ("locator", "ascending")])
    person = table.column("person").to_numpy()
    stamps = table.column("behandlingstidspunkt").cast(pa.int64()).to_numpy()
    first = np.r_[True, person[1:] != person[:-1]]
    starts = np.flatnonzero(first)
    group = np.cumsum(first) - 1
    counts = np.add.reduceat(table.column("entry_claims").to_numpy(), starts)
    keep = np.flatnonzero(stamps == stamps[starts][group])
    claims = np.where(first, counts[group], 0)[keep]
    reduced = table.take(pa.array(keep))
    return reduced.set_column(reduced.schema.get_field_index("entry_claims"), "entry_claims", pa.array(claims))


def break_ties(firsts: pa.Table, source: Source, period: tuple[date, date]) -> pa.Table:
    """One row per person (without locators): where entry claims tie at a person's earliest time,
    the one with the smallest `regning_id`, carrying the person's count."""
    person = firsts.column("person").to_numpy()
    values, rows_per_person = np.unique(person, return_counts=True)
    is_tied = np.isin(person, values[rows_per_person > 1])
    if not is_tied.any():
        return firsts.drop_columns(["locator"])
    tied = firsts.filter(pa.array(is_tied))
    tied = tied.append_column("regning_id", _regning_ids_at(source, period, tied.column("locator").to_numpy()))
    tied = tied.sort_by([("person", "ascending"), ("regning_id", "ascending")])
    tied_person = tied.column("person").to_numpy()
    starts = np.flatnonzero(np.r_[True, tied_person[1:] != tied_person[:-1]])
    counts = np.add.reduceat(tied.column("entry_claims").to_numpy(), starts)
    chosen = tied.take(pa.array(starts)).drop_columns(["regning_id"])
    chosen = chosen.set_column(chosen.schema.get_field_index("entry_claims"), "entry_claims", pa.array(counts))
    return pa.concat_tables([firsts.filter(pa.array(~is_tied)), chosen]).drop_columns(["locator"])


def merge_groups(tables: list[pa.Table]) -> pa.Table:
    """Per person (by number), the earliest of the scan groups' first entry claims, carrying the
    sum of the groups' counts; sorted by person. Groups never tie: they are whole years
    (groups.py)."""
    table = pa.concat_tables(tables).sort_by([("person", "ascending"), ("behandlingstidspunkt", "ascending")])
    if len(tables) == 1 or table.num_rows == 0:
        return table
    person = table.column("person").to_numpy()
    starts = np.flatnonzero(np.r_[True, person[1:] != person[:-1]])
    counts = np.add.reduceat(table.column("entry_claims").to_numpy(), starts)
    chosen = table.take(pa.array(starts))
    return chosen.set_column(chosen.schema.get_field_index("entry_claims"), "entry_claims", pa.array(counts))


def _regning_ids_at(source: Source, period: tuple[date, date], locators: np.ndarray) -> pa.Array:
    """`regning_id` of the claims at these locators, reading only the pieces that hold them (the
    same period gives the same pieces and rows as pass 1's scan)."""
    pieces = locators >> _PIECE_SHIFT
    rows = locators & ((1 << _PIECE_SHIFT) - 1)
    found: list[str | None] = [None] * len(locators)
    read_in_piece: dict[int, int] = {}
    for piece, batch in scan_pieces(source, ["regning_id"], period, pieces=set(pieces.tolist())):
        start = read_in_piece.get(piece, 0)
        read_in_piece[piece] = start + batch.num_rows
        here = np.flatnonzero((pieces == piece) & (rows >= start) & (rows < start + batch.num_rows))
        values = batch.column("regning_id").take(pa.array(rows[here] - start)).to_pylist()
        for at, value in zip(here.tolist(), values, strict=True):
            found[at] = value
    if any(value is None for value in found):
        raise changed_while_read(source.path)
    return pa.array(found, pa.string())
