"""Each scanned claim's person label, written by pass 1 and read back, row for row, by pass 2.

With it pass 2 neither decodes the national ids again nor looks them up in the cohort, which
was a third of its time; what it reads from this file is 4 bytes a claim, meaningless outside its
scan group and run (the table from labels to ids is sealed, person_labels.py).

Both passes scan the same rows in the same order (same files, row groups and period). Pass 1
also keeps each batch's row count and the sum of its timestamps, and pass 2 checks them: a
source changed between the passes is refused, never misread.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kuhr_pipeline.source.scan import changed_while_read

FINGERPRINT_COLUMN = "behandlingstidspunkt"  # both passes read it
_LABEL = np.dtype(np.int32)


def _fingerprint(batch: pa.RecordBatch) -> tuple[int, int]:
    stamps = batch.column(FINGERPRINT_COLUMN).cast(pa.int64())
    return batch.num_rows, int(pc.sum(stamps).as_py() or 0)


class RowLabelsWriter:
    """Appends each batch's labels to `path` (pass 1; owner-only, as all staging is)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._file: BinaryIO = os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb")
        self._batches: list[tuple[int, int]] = []

    def write(self, batch: pa.RecordBatch, labels: np.ndarray) -> None:
        labels.astype(_LABEL, copy=False).tofile(self._file)
        self._batches.append(_fingerprint(batch))

    def close(self) -> RowLabels:
        self._file.close()
        return RowLabels(self._path, tuple(self._batches))

    def discard(self) -> None:
        """Close and remove the file (pass 1 failed)."""
        self._file.close()
        self._path.unlink(missing_ok=True)


@dataclass(frozen=True)
class RowLabels:
    """Pass 1's labels, in scan order, with each batch's fingerprint."""

    path: Path
    batches: tuple[tuple[int, int], ...]

    def along(self, batches: Iterable[pa.RecordBatch], source: Path) -> Iterator[tuple[pa.RecordBatch, np.ndarray]]:
        """Each batch of the second scan with its rows' labels; SourceError if the rows differ."""
        expected = iter(self.batches)
        with self.path.open("rb") as file:
            for batch in batches:
                if next(expected, None) != _fingerprint(batch):
                    raise changed_while_read(source)
                yield batch, np.fromfile(file, dtype=_LABEL, count=batch.num_rows)
        if next(expected, None) is not None:
            raise changed_while_read(source)
