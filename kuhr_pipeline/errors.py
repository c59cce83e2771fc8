"""The one exception type for errors a user can cause, and how it reads.

Every refusal names where the problem is (a file), what is wrong in it (a field) and what to do
about it (the fix), so a data manager can act on the message without reading code.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a user's input."""

    file: str
    field: str
    problem: str
    fix: str = ""

    def __str__(self) -> str:
        text = f"{self.file}: {self.field}: {self.problem}"
        return f"{text} (fix: {self.fix})" if self.fix else text


class KuhrError(Exception):
    """A user-caused error: a bad spec, a missing key, a bad source, a bad delivery.

    The CLI prints it without a traceback and exits with `exit_code`.
    """

    exit_code = 2

    def __init__(self, problems: Problem | list[Problem]) -> None:
        self.problems = problems if isinstance(problems, list) else [problems]
        super().__init__("\n".join(str(p) for p in self.problems))

    @classmethod
    def single(cls, file: str, field: str, problem: str, fix: str = "") -> KuhrError:
        return cls(Problem(str(file), field, problem, fix))


class SpecRefused(KuhrError):
    """The application spec may not run."""


class SourceError(KuhrError):
    """The source dataset is missing or does not meet the source contract (exit 3: the
    deployment's configuration or data, not the spec)."""

    exit_code = 3


class KeyFileError(KuhrError):
    """A key file is missing, unreadable or malformed (exit 3: the deployment's configuration).
    Messages never hold key material."""

    exit_code = 3


class KeysExist(KeyFileError):
    """`keys init` found a key where it would write one: keys are never overwritten (exit 1)."""

    exit_code = 1


class SignerKeyError(KeyFileError):
    """The key a delivery or the audit log is checked against is missing or unusable: the check
    cannot say "intact", so it says "not" (exit 1, as verify's contract allows 0 or 1 only)."""

    exit_code = 1


class RunConflict(KuhrError):
    """Another run of the same application is in progress: this one stops before reading anything."""

    exit_code = 1


class DeploymentMismatch(KuhrError):
    """A run (or one of its steps) is not the deployment's own: launched with other folders or
    keys, or on a worker of another deployment. Nothing is read (exit 2)."""


class StagingFull(KuhrError):
    """The disk under DAGSTER_HOME is full: the run stops with one line, its staging is removed."""

    exit_code = 1


class DeliveryError(KuhrError):
    """A delivery failed verification, or cannot be written or read."""

    exit_code = 1
