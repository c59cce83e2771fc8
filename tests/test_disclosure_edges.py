"""Each disclosure rule's constant and comparison, pinned: a test here fails when an edge moves
(the small-count threshold, the rounding base, the dominance share, the statistics' min_cell
floor, the estimate's rounding, the audit chain's first link)."""

from __future__ import annotations

import json

import pyarrow as pa

from kuhr_pipeline.application.rules import MIN_CELL_FLOOR
from kuhr_pipeline.delivery.audit import GENESIS, append_audit
from kuhr_pipeline.disclosure import suppression
from kuhr_pipeline.disclosure.masking import SMALL_COUNT_THRESHOLD, mask_count
from kuhr_pipeline.estimate import ESTIMATE_ROUNDING


def test_the_small_count_threshold_and_the_rounding_base() -> None:
    assert SMALL_COUNT_THRESHOLD == 5 and ESTIMATE_ROUNDING == 5 and MIN_CELL_FLOOR == 3
    assert [mask_count(n) for n in (0, 1, 4, 5, 6)] == ["0", "<5", "<5", "5", "6"]
    assert [mask_count(n, 5, 5) for n in (0, 4, 5, 7, 8, 12, 13)] == ["0", "<5", "5", "5", "10", "10", "15"]
    assert [mask_count(n, 10, 5) for n in (9, 10)] == ["<10", "10"]


def test_the_dominance_share_is_more_than_85_percent() -> None:
    assert suppression.DOMINANCE_SHARE == 0.85
    table = pa.table({"sum_egenandel": [100.0, 100.0, 0.0], "top_egenandel": [85.0, 85.01, 0.0]})
    assert suppression._dominated(["at", "above", "zero"], table, "sum_egenandel") == ["above"]


def test_the_audit_chain_starts_at_64_zeros(tmp_path, keys_env) -> None:
    from kuhr_pipeline.identity.keys import read_signing_key

    assert GENESIS == "0" * 64
    log = tmp_path / "audit.jsonl"
    append_audit(log, {"event": "estimate"}, read_signing_key(keys_env["signing"]))
    (line,) = [json.loads(x) for x in log.read_text().splitlines()]
    assert line["prev_sha256"] == GENESIS and line["sequence"] == 1


def test_a_statistics_deliverys_bills_dropped_are_rounded_to_5() -> None:
    from kuhr_pipeline.cohort.attrition import Attrition
    from kuhr_pipeline.identity.fodselsnummer import IdReason

    steps, dropped = [("persons with a claim in the period", 1002)], {IdReason.MISSING: 7, IdReason.MALFORMED: 3}
    statistics = Attrition(steps, dropped, threshold=5, rounding=5).table().to_pylist()
    person_level = Attrition(steps, dropped, threshold=5, rounding=1).table().to_pylist()
    bills = {row["step"]: row["bills"] for row in statistics if row["bills"] is not None}
    assert (
        bills["bills dropped: missing fødselsnummer"] == "5" and bills["bills dropped: malformed fødselsnummer"] == "<5"
    )
    assert statistics[0]["persons"] == "1000" and person_level[0]["persons"] == "1002"
    assert {row["step"]: row["bills"] for row in person_level}["bills dropped: missing fødselsnummer"] == "7"


def test_the_first_lines_link_is_checked(tmp_path, keys_env) -> None:
    """A first line signed by the key but chained to something other than 64 zeros (a log that
    lost its beginning) does not verify."""
    import base64
    import hashlib

    from kuhr_pipeline.delivery.audit import _canonical, read_audit
    from kuhr_pipeline.identity.keys import read_signing_key

    key = read_signing_key(keys_env["signing"])
    log = tmp_path / "audit.jsonl"
    append_audit(log, {"event": "estimate"}, key)
    assert read_audit(log, key.public_key())[1] == []
    record = json.loads(log.read_text())
    body = {k: v for k, v in record.items() if k != "signature"} | {"prev_sha256": hashlib.sha256(b"x").hexdigest()}
    signature = base64.b64encode(key.sign(_canonical(body))).decode()
    log.write_text(json.dumps({**body, "signature": signature}) + "\n")
    (problem,) = read_audit(log, key.public_key())[1]
    assert problem.field == "line 1" and "does not chain" in problem.problem


def test_the_threshold_and_rounding_of_a_spec() -> None:
    from types import SimpleNamespace

    from kuhr_pipeline.disclosure.masking import count_rounding, small_count_threshold

    person_level = SimpleNamespace(data_level="pseudonymised", statistics=None)
    small, large = (SimpleNamespace(data_level="statistics", statistics=SimpleNamespace(min_cell=n)) for n in (3, 10))
    assert [small_count_threshold(s) for s in (person_level, small, large)] == [5, 5, 10]  # type: ignore[arg-type]
    assert [count_rounding(s) for s in (person_level, small)] == [1, 5]  # type: ignore[arg-type]
