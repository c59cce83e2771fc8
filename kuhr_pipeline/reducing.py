"""Tables gathered batch by batch and kept small by reducing them as they grow.

Used wherever a stream is summarised by a reduction that can be applied again to its own output
(one row per person, per distinct row, per distinct value): memory stays at the size of the
summary plus the pieces since the last reduction, never the size of the stream.
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa

LIMIT_ROWS = 2_000_000


class Reducing:
    """Collects pieces (reduced or not: the reduction is applied again); reduces their
    concatenation whenever more than `limit_rows` rows are held, and once more at the end."""

    def __init__(self, reduce: Callable[[pa.Table], pa.Table], limit_rows: int = LIMIT_ROWS) -> None:
        self._reduce = reduce
        self._limit_rows = limit_rows
        self._pieces: list[pa.Table] = []
        self._rows = 0

    def add(self, piece: pa.Table) -> None:
        self._pieces.append(piece)
        self._rows += piece.num_rows
        if len(self._pieces) > 1 and self._rows > self._limit_rows:
            self._pieces = [self._reduce(pa.concat_tables(self._pieces))]
            self._rows = self._pieces[0].num_rows

    def result(self, empty: pa.Table) -> pa.Table:
        """The reduction of everything added (`empty` when nothing was)."""
        if not self._pieces:
            return empty
        if len(self._pieces) == 1:
            return self._pieces[0]
        return self._reduce(pa.concat_tables(self._pieces))
