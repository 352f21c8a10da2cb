"""Problems as data: every user-facing error or warning carries the place it comes from."""

from __future__ import annotations

import enum

import attrs


class Severity(enum.Enum):
    """How bad a problem is; the value is what the CLI prints."""

    ERROR = "error"
    WARNING = "warning"


@attrs.frozen
class Location:
    """A file (relative to the tree or as the user named it) and, where known, a 1-based line."""

    path: str
    line: int | None = None

    def __str__(self) -> str:
        return self.path if self.line is None else f"{self.path}:{self.line}"


@attrs.frozen
class Problem:
    """One thing wrong with the user's input, worded for the user."""

    location: Location
    message: str
    severity: Severity = Severity.ERROR

    def __str__(self) -> str:
        return f"{self.location}: {self.severity.value}: {self.message}"


def error(path: str, message: str, line: int | None = None) -> Problem:
    """Build an error problem."""
    return Problem(Location(path, line), message, Severity.ERROR)


def warning(path: str, message: str, line: int | None = None) -> Problem:
    """Build a warning problem."""
    return Problem(Location(path, line), message, Severity.WARNING)


class DockerPkgError(Exception):
    """Raised with one or more problems; the CLI prints each and exits 1, without a traceback."""

    def __init__(self, problems: tuple[Problem, ...] | list[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    @classmethod
    def single(cls, path: str, message: str, line: int | None = None) -> DockerPkgError:
        """One error at one place."""
        return cls([error(path, message, line)])
