"""Pass 1's person labels and the per-claim label file pass 2 reads instead of national ids."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from kuhr_pipeline.cohort.person_labels import NO_PERSON, PersonLabels, claim_labels, positions_among
from kuhr_pipeline.cohort.row_labels import RowLabelsWriter
from kuhr_pipeline.errors import SourceError
from kuhr_pipeline.identity.fodselsnummer import IdReason, check_ids
from tests.helpers import fnr, person_id


def test_each_id_keeps_its_label_and_new_ids_get_the_next_ones() -> None:
    persons = PersonLabels()
    assert persons.label(np.array([40, 10, 40, 30])).tolist() == [3, 1, 3, 2]  # new ones in id order
    assert persons.label(np.array([10, 50, 40, 50])).tolist() == [1, 4, 3, 4]
    assert len(persons) == 4
    assert persons.numbers(np.array([4, 3])).tolist() == [50, 40]


def test_labels_stay_put_while_the_index_grows() -> None:
    """Hundreds of thousands of ids arrive in batches (the large index is rebuilt several times
    on the way); every id keeps the label it got first, and new ids get the next labels."""
    rng = np.random.default_rng(7)
    ids = rng.choice(10**11, size=400_000, replace=False).astype(np.int64)
    persons = PersonLabels()
    given: dict[int, int] = {}
    for start in range(0, len(ids), 50_000):
        old = ids[rng.choice(start, size=min(start, 20_000), replace=False)] if start else ids[:0]
        batch = np.concatenate([old, ids[start : start + 50_000]])
        labels = persons.label(batch)
        for number, label in zip(batch.tolist(), labels.tolist(), strict=True):
            assert given.setdefault(number, label) == label
    assert sorted(given.values()) == list(range(1, len(ids) + 1))
    assert persons.numbers(np.array(list(given.values()))).tolist() == list(given)


def test_positions_among_sorted_numbers() -> None:
    at, known = positions_among(np.array([3, 200_000, 10**10]), np.array([3, 4, 10**10, 900_000, 1]))
    assert known.tolist() == [True, False, True, False, False]
    assert at[known].tolist() == [0, 2]
    at, known = positions_among(np.array([], dtype=np.int64), np.array([5]))
    assert known.tolist() == [False]


def _batch(stamps: list[int]) -> pa.RecordBatch:
    return pa.record_batch({"behandlingstidspunkt": pa.array(stamps, pa.timestamp("ms"))})


def test_row_labels_read_back_batch_by_batch(tmp_path: Path) -> None:
    writer = RowLabelsWriter(tmp_path / "labels")
    writer.write(_batch([1, 2, 3]), np.array([5, 0, 5], dtype=np.int32))
    writer.write(_batch([4]), np.array([7], dtype=np.int32))
    row_labels = writer.close()
    read = [(b.num_rows, labels.tolist()) for b, labels in row_labels.along([_batch([1, 2, 3]), _batch([4])], tmp_path)]
    assert read == [(3, [5, 0, 5]), (1, [7])]


@pytest.mark.parametrize(
    "second_scan",
    [[[1, 2, 3], [5]], [[1, 2, 3]], [[1, 2, 3], [4], [5]], [[1, 2], [3, 4]]],
    ids=["other claims", "fewer batches", "more batches", "other batches"],
)
def test_a_source_changed_between_the_passes_is_refused(tmp_path: Path, second_scan: list[list[int]]) -> None:
    writer = RowLabelsWriter(tmp_path / "labels")
    writer.write(_batch([1, 2, 3]), np.array([5, 0, 5], dtype=np.int32))
    writer.write(_batch([4]), np.array([7], dtype=np.int32))
    row_labels = writer.close()
    with pytest.raises(SourceError, match="changed while it was being read"):
        list(row_labels.along([_batch(s) for s in second_scan], tmp_path))


def test_claim_labels_find_known_ids_and_check_only_the_others() -> None:
    """Ids seen before keep their label (found by their number); new valid ids get the next ones;
    refused ids get none and are counted by reason, as the row-by-row check counts them."""
    alice, bob, carol = person_id(1), person_id(2), person_id(3)
    synthetic = alice[:2] + f"{int(alice[2:4]) + 80:02d}" + alice[4:9]  # month + 80: a test person
    bad = alice[:10] + str((int(alice[10]) + 1) % 10)  # the second check digit wrong
    persons = PersonLabels()
    first = pa.array([alice, bob, alice, None, "1234", bad, f"{alice} ", fnr(synthetic[:9])], pa.string())
    labels, per_reason = claim_labels(first, persons, add=True)
    assert labels.tolist() == [1, 2, 1, NO_PERSON, NO_PERSON, NO_PERSON, NO_PERSON, NO_PERSON]
    assert per_reason.tolist() == np.bincount(check_ids(first).reason, minlength=len(IdReason)).tolist()
    assert per_reason[IdReason.VALID] == 3 and per_reason[IdReason.SYNTHETIC] == 1

    second = pa.array([carol, bob, bad, alice], pa.string())
    labels, per_reason = claim_labels(second, persons, add=False)  # carol is new: not labelled
    assert labels.tolist() == [NO_PERSON, 2, NO_PERSON, 1]
    assert per_reason[IdReason.VALID] == 3 and per_reason[IdReason.BAD_CHECK_DIGITS] == 1
    labels, _ = claim_labels(second, persons, add=True)
    assert labels.tolist() == [3, 2, NO_PERSON, 1] and len(persons) == 3
    assert persons.numbers(np.array([1, 2, 3])).tolist() == [int(alice), int(bob), int(carol)]
