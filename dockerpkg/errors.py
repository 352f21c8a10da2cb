"""Problems as data: every user-facing error or warning carries the place it comes from."""

from __future__ import annotations

import enum
from collections.abc import Sequence

import attrs


class Severity(enum.Enum):
    """How bad a problem is; the value is what the CLI prints."""

    ERROR = "error"
    WARNING = "warning"


class Concern(enum.Enum):
    """What a problem is about: the run (always said), or how the tree is kept (`lint` lists
    those; other commands count them in one line)."""

    RUN = "run"
    STYLE = "style"


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
    concern: Concern = Concern.RUN

    def __str__(self) -> str:
        return f"{self.location}: {self.severity.value}: {self.message}"


def problem_lines(
    problems: Sequence[Problem], directory: str | None = None, *, every: bool = False
) -> list[str]:
    """What a command prints of PROBLEMS: each about the run, then one line counting those
    about the tree's style (EVERY: each of them too)."""
    style = [p for p in problems if p.concern is Concern.STYLE]
    lines = [str(p) for p in problems if every or p.concern is Concern.RUN]
    if style and not every:
        noun = "warning" if len(style) == 1 else "warnings"
        lines.append(
            f"{len(style)} {noun} about the tree: dockerpkg lint {directory or 'DIRECTORY'} "
            "lists them "
            "(--info shows them here)"
        )
    return lines


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
