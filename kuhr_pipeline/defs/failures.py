"""Failures a data manager can read: a run that stops for a user's reason (a refused spec, a
missing key, a failed blocking check) ends with one sentence, as a `dg.Failure` with its problems
as metadata, instead of Dagster's error class and a stack trace."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from typing import ParamSpec, TypeVar, cast

import dagster as dg
from dagster._core.errors import DagsterUserCodeProcessError
from dagster_shared.error import SerializableErrorInfo

from kuhr_pipeline.errors import KuhrError

P = ParamSpec("P")
R = TypeVar("R")


def plain_failures(step: Callable[P, R]) -> Callable[P, R]:
    """Wrap an asset's or op's function: a KuhrError it raises ends the step as a `dg.Failure` with
    the error's sentence (not retried: the input must be fixed first). A generator step (one whose
    output is optional) stays a generator, which is how Dagster tells that it yields its outputs."""
    if inspect.isgeneratorfunction(step):

        @functools.wraps(step)
        def yielding(*args: P.args, **kwargs: P.kwargs) -> Iterator[object]:
            try:
                yield from cast(Iterator[object], step(*args, **kwargs))
            except KuhrError as error:
                raise _failure(error) from None

        return cast(Callable[P, R], yielding)

    @functools.wraps(step)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return step(*args, **kwargs)
        except KuhrError as error:
            raise _failure(error) from None

    return wrapper


class Sentence(DagsterUserCodeProcessError, dg.Failure):
    """A `dg.Failure` that Dagster records as its sentence alone, with no stack trace.

    Dagster records a failed step's exception with its traceback (which the UI shows under the
    run's summary, and which a user's mistake does not need), except an error that already
    carries its own record from another process: that record is taken as it is
    (`serializable_error_info_from_exc_info` in dagster/_utils/error.py). This failure carries
    one: its sentence, the class name `Failure`, no stack. tests/test_ui_e2e.py reads it back
    through the UI's API, so a Dagster release that records it otherwise fails there. (Dagster's
    error class comes first so that `dg.Failure.__init__` ends in `Exception`'s, not in that
    class's, which wants the record as a keyword.)"""

    def __init__(self, description: str, metadata: dict[str, dg.MetadataValue]) -> None:
        dg.Failure.__init__(self, description=description, metadata=metadata, allow_retries=False)
        self.user_code_process_error_infos = [SerializableErrorInfo(message=description, stack=[], cls_name="Failure")]


EXIT_CODE = "exit_code"  # the error's exit code, for `deliver` to exit with (a refused source: 3)


def _failure(error: KuhrError) -> dg.Failure:
    return Sentence(
        description=str(error),
        metadata={
            EXIT_CODE: dg.MetadataValue.int(error.exit_code),
            "problems": dg.MetadataValue.md(
                "| file | field | problem | fix |\n|---|---|---|---|\n"
                + "\n".join(f"| {p.file} | {p.field} | {p.problem} | {p.fix} |" for p in error.problems)
            ),
        },
    )


def verdict(result: dg.AssetCheckResult, check_name: str, application_id: str) -> Iterator[dg.AssetCheckResult]:
    """Record a blocking check's result; when it failed, end the run with its one sentence."""
    yield result
    if not result.passed:
        raise Sentence(
            description=f"{application_id}: check {check_name} failed: {(result.description or '').rstrip('.')}. "
            "Nothing is delivered.",
            metadata={"check": dg.MetadataValue.text(check_name)},
        )
