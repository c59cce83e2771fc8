"""Counts shown in Dagster metadata: claims per month; progress lines."""

from __future__ import annotations

from kuhr_pipeline.report import months_by_year


def test_claims_per_month_fold_into_one_row_per_year() -> None:
    rows = months_by_year({"2019-01": "12", "2019-12": "<5", "2020-03": "7"})
    assert [r["year"] for r in rows] == ["2019", "2020"]
    assert rows[0]["01"] == "12" and rows[0]["12"] == "<5" and rows[0]["02"] == "" and rows[1]["03"] == "7"


def test_a_pass_progress_is_a_bar_on_a_terminal_and_lines_elsewhere(capsys) -> None:
    import logging

    from kuhr_pipeline.defs.loggers import _PipelineLines
    from kuhr_pipeline.report import progress_line, progress_of

    assert progress_of(progress_line("pass 1: finding the cohort", 1_500, 3_000)) == (
        "pass 1: finding the cohort",
        1_500,
        3_000,
    )
    assert progress_of("cohort: 722 persons, 12981 claims") is None

    def records() -> list[logging.LogRecord]:
        out = []
        for text in [progress_line("pass 1", n, 3_000) for n in (1_000, 2_000, 3_000)] + ["cohort: 9 persons"]:
            record = logging.LogRecord("x", logging.INFO, "", 0, text, None, None)
            record.dagster_meta = {"dagster_event": None, "orig_message": text}  # type: ignore[attr-defined]
            out.append(record)
        return out

    for record in records():
        _PipelineLines(bars=False).emit(record)
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "pass 1: 1,000 of 3,000 claims read",
        "pass 1: 2,000 of 3,000 claims read",
        "pass 1: 3,000 of 3,000 claims read",
        "cohort: 9 persons",
    ]
    handler = _PipelineLines(bars=True)
    for record in records():
        handler.emit(record)
    drawn = capsys.readouterr().err
    assert "claims read" not in drawn and "100%" in drawn and drawn.rstrip().endswith("cohort: 9 persons")
