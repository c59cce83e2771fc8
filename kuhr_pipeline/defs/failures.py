"""Failures a data manager can read: a run that stops for a user's reason (a refused spec, a
missing key, a failed blocking check) ends with one sentence, as a `dg.Failure` with its problems
as metadata, instead of Dagster's error class (the UI still shows Dagster's stack below the
sentence: docs/design.md, known limits)."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from typing import ParamSpec, TypeVar, cast

import dagster as dg

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


def _failure(error: KuhrError) -> dg.Failure:
    return dg.Failure(
        description=str(error),
        metadata={
            "problems": dg.MetadataValue.md(
                "| file | field | problem | fix |\n|---|---|---|---|\n"
                + "\n".join(f"| {p.file} | {p.field} | {p.problem} | {p.fix} |" for p in error.problems)
            )
        },
        allow_retries=False,
    )


def verdict(result: dg.AssetCheckResult, check_name: str, application_id: str) -> Iterator[dg.AssetCheckResult]:
    """Record a blocking check's result; when it failed, end the run with its one sentence."""
    yield result
    if not result.passed:
        raise dg.Failure(
            description=f"{application_id}: check {check_name} failed: {(result.description or '').rstrip('.')}. "
            "Nothing is delivered.",
            metadata={"check": check_name},
            allow_retries=False,
        )
