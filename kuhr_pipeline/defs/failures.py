"""Failures a data manager can read: a run that stops for a user's reason (a refused spec, a
missing key, a failed blocking check) ends with one sentence, as a `dg.Failure` with its problems
as metadata, instead of a Dagster stack trace in the run's summary."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import ParamSpec, TypeVar

import dagster as dg

from kuhr_pipeline.errors import KuhrError

P = ParamSpec("P")
R = TypeVar("R")


def plain_failures(step: Callable[P, R]) -> Callable[P, R]:
    """Wrap an asset's function: a KuhrError it raises ends the step as a `dg.Failure` with the
    error's sentence (not retried: the input must be fixed first)."""

    @functools.wraps(step)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return step(*args, **kwargs)
        except KuhrError as error:
            raise dg.Failure(
                description=str(error),
                metadata={
                    "problems": dg.MetadataValue.md(
                        "| file | field | problem | fix |\n|---|---|---|---|\n"
                        + "\n".join(f"| {p.file} | {p.field} | {p.problem} | {p.fix} |" for p in error.problems)
                    )
                },
                allow_retries=False,
            ) from None

    return wrapper


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
