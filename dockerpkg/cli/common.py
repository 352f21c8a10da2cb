"""What every command of the CLI shares: the invocation's context, exit codes, the lock,
how problems are printed, the help texts several verbs use."""

from __future__ import annotations

import contextlib
import datetime
import sys
from collections.abc import Iterator, Sequence

import attrs

from dockerpkg.api import tree_lock
from dockerpkg.errors import Problem, problem_lines

# The one table of exit statuses. 2: a usage error (argparse), or "changes" where a command
# says so (--detailed-exitcode, diff).
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_CHANGES = 0, 1, 2, 2
# As shells report a process ended by SIGINT or SIGTERM: 128 + the signal's number.
EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143

WAIT_LOCK_HELP = "when another run holds the tree's lock, wait for it instead of stopping"


@attrs.frozen
class Context:
    """Options given before the verb, shared by every command of one invocation."""

    config_path: str | None
    env: dict[str, str]
    now: datetime.datetime
    echo: bool = False  # --info/--debug: build output to the terminal too


def print_problems(
    problems: Sequence[Problem], directory: str | None = None, *, every: bool = False
) -> None:
    """Each problem about the run, and a count of those about the tree's style (EVERY: them
    too, as --info asks); DIRECTORY names the tree in the `lint` command the count gives."""
    for line in problem_lines(problems, directory, every=every):
        print(line, file=sys.stderr)


@contextlib.contextmanager
def locked(directory: str, *, wait: bool) -> Iterator[None]:
    """Hold DIRECTORY's lock (see dockerpkg.api.tree_lock): refuse at once if another run
    holds it, or with WAIT say so and wait."""

    def waiting(holder: int | None) -> None:
        who = "another dockerpkg run" + ("" if holder is None else f" (pid {holder})")
        print(f"{directory}: waiting for {who} to release the lock", file=sys.stderr)

    with tree_lock(directory, wait=wait, on_wait=waiting):
        yield


class ExitStatus(Exception):  # noqa: N818 (a signal to main, not an error)
    """Raised by a command to end with a given status after printing what it had to."""

    def __init__(self, code: int) -> None:
        self.code = code
        super().__init__(code)
