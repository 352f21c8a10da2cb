"""What a run's steps report back: results, the errors a step raises, the listener that is
told of each event, and the interruption shared with the signal handling."""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

import attrs

from dockerpkg.core.plan import StepKey
from dockerpkg.core.report import Outcome

log = logging.getLogger(__name__)

#: Where a run's folder keeps the tracebacks of unexpected exceptions (bugs) in its steps.
BUGS_LOG = "bugs.log"


class TaskFailedError(Exception):
    """A step failed for a reason worth telling the user (not a bug); DETAIL, when given,
    is what it did before failing (a promotion's digest, once its version tag moved)."""

    def __init__(self, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail


class TaskCancelledError(TaskFailedError):
    """A step was stopped by a cancellation (second Ctrl-C)."""


@attrs.frozen
class TaskResult:
    key: StepKey
    outcome: Outcome
    started: float | None = None  # seconds since the run began
    duration: float | None = None
    detail: str | None = None
    error: str | None = None
    # An unexpected exception's traceback: a bug, shown whole (see record_bugs).
    trace: str | None = attrs.field(default=None, eq=False, repr=False)


def bug_result(
    key: StepKey, exc: BaseException, started: float | None, duration: float | None
) -> TaskResult:
    """A step that raised what no step should: failed, with its traceback kept."""
    trace = "".join(traceback.format_exception(exc))
    log.debug("bug in %s:\n%s", key, trace)
    return TaskResult(
        key, Outcome.FAILED, started, duration, error=f"internal error: {exc!r}", trace=trace
    )


def record_bugs(results: Mapping[StepKey, TaskResult], run_dir: Path) -> dict[StepKey, TaskResult]:
    """RESULTS, with every bug's traceback written to RUN_DIR/bugs.log and its error naming
    that file: a bug is shown, never only a row of the report."""
    bugs = {key: r for key, r in results.items() if r.trace is not None}
    if not bugs:
        return dict(results)
    path = run_dir / BUGS_LOG
    with path.open("a", encoding="utf-8") as handle:
        for key, result in bugs.items():
            handle.write(f"== {key} ==\n{result.trace}\n")
    shown = {
        key: attrs.evolve(r, error=f"{r.error} (a bug in dockerpkg: the traceback is in {path})")
        for key, r in bugs.items()
    }
    return {key: shown.get(key, r) for key, r in results.items()}


class Listener(Protocol):
    def task_started(self, key: StepKey) -> None: ...

    def task_finished(self, result: TaskResult) -> None: ...


@attrs.define
class Interrupt:
    """Set by the caller's signal handling: first stop starting steps, then cancel."""

    stop: threading.Event = attrs.field(factory=threading.Event)
    _cancellers: list[Callable[[], None]] = attrs.field(factory=list)

    def on_cancel(self, callback: Callable[[], None]) -> None:
        self._cancellers.append(callback)

    def cancel(self) -> None:
        """Stop, and abort running work through the callbacks registered by its owners."""
        self.stop.set()
        for callback in list(self._cancellers):
            callback()
