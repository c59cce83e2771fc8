"""The contract's generalisations, as vectorised Arrow functions.

group5 → "00-04" … "85-89", "90+"; group10 → "00-09" … "80-89", "90+"; fylke → the first two
digits of a kommune number; kommune → the number, with Oslo, Stavanger, Bergen and Trondheim bydel
codes folded into their kommune (a bydel is finer than a kommune, so never delivered as such);
month → "YYYY-MM"; year → integer; date → date; timestamp and exact → as in the source.
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc

OPEN_AGE = 90

# bydel ranges → kommune (KUHR receives bydel codes; kuhr-facts.md)
_BYDELER = [(312, 335, "0301"), (1161, 1165, "1103"), (1202, 1210, "1201"), (1603, 1607, "1601")]


def age_group(values: pa.Array, width: int) -> pa.Array:
    def label(age: int) -> str:
        low = age // width * width
        return f"{OPEN_AGE}+" if age >= OPEN_AGE else f"{low:02d}-{low + width - 1:02d}"

    return _labelled(pc.cast(values, pa.int32()), label)


def fylke(values: pa.Array) -> pa.Array:
    return pc.utf8_slice_codeunits(values, 0, 2)


def kommune(values: pa.Array) -> pa.Array:
    numbers = pc.cast(pc.if_else(pc.match_substring_regex(values, r"^[0-9]{4}$"), values, None), pa.int32())
    out = values
    for low, high, target in _BYDELER:
        inside = pc.and_(pc.greater_equal(numbers, low), pc.less_equal(numbers, high))
        out = pc.if_else(pc.fill_null(inside, False), pa.scalar(target), out)
    return out


def month(values: pa.Array) -> pa.Array:
    keys = pc.add(pc.multiply(pc.cast(pc.year(values), pa.int32()), 100), pc.cast(pc.month(values), pa.int32()))
    return _labelled(keys, lambda key: f"{key // 100:04d}-{key % 100:02d}")


def year(values: pa.Array) -> pa.Array:
    return pc.cast(pc.year(values), pa.int16())


def date(values: pa.Array) -> pa.Array:
    return pc.cast(values, pa.date32())


def _labelled(keys: pa.Array, label: Callable[[int], str]) -> pa.Array:
    """Text labels for integer keys, made once per distinct key (a few hundred at most), not per row:
    Arrow's string kernels (strftime above all) cost far more per row than a dictionary lookup."""
    if isinstance(keys, pa.ChunkedArray):
        keys = keys.combine_chunks()
    encoded = pc.dictionary_encode(keys)
    labels = pa.array([label(key) for key in encoded.dictionary.to_pylist()], pa.string())
    return labels.take(encoded.indices)


def _same(values: pa.Array) -> pa.Array:
    return values


GENERALISATIONS: dict[str, Callable[[pa.Array], pa.Array]] = {
    "exact": _same,
    "timestamp": _same,
    "group5": lambda v: age_group(v, 5),
    "group10": lambda v: age_group(v, 10),
    "kommune": kommune,
    "fylke": fylke,
    "month": month,
    "year": year,
    "date": date,
}


def generalise(values: pa.Array, how: str) -> pa.Array:
    return GENERALISATIONS[how](values)
