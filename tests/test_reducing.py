"""Reducing a stream as it grows gives what reducing it whole gives, holding little."""

from __future__ import annotations

import pyarrow as pa

from kuhr_pipeline.reducing import Reducing


def per_key(table: pa.Table) -> pa.Table:
    summed = table.group_by("key").aggregate([("n", "sum")])
    return pa.table({"key": summed.column("key"), "n": summed.column("n_sum")})


def test_reduced_as_it_grows_equals_reduced_whole() -> None:
    pieces = [pa.table({"key": [i % 7, (i * 3) % 7, None], "n": [1, 2, 3]}) for i in range(50)]
    reducing = Reducing(per_key, limit_rows=10)
    held = []
    for piece in pieces:
        reducing.add(per_key(piece))
        held.append(sum(p.num_rows for p in reducing._pieces))
    assert max(held) <= 10 + 3  # reduced whenever more than the limit is held
    got = sorted(reducing.result(pieces[0].slice(0, 0)).to_pylist(), key=repr)
    assert got == sorted(per_key(pa.concat_tables(pieces)).to_pylist(), key=repr)


def test_nothing_added_gives_the_empty_table() -> None:
    empty = pa.table({"key": pa.array([], pa.int64()), "n": pa.array([], pa.int64())})
    assert Reducing(per_key).result(empty) is empty
