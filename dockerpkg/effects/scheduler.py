"""Run a DAG of tasks on threads: a task starts as soon as everything it needs is done.

The scheduler decides nothing about images: it only orders and runs what it is given, caps
how many tasks of each pool run at once, and skips what depends on a failure.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Protocol

import attrs

from dockerpkg.core.report import Outcome

log = logging.getLogger(__name__)

#: Where a run's folder keeps the tracebacks of unexpected exceptions (bugs) in its tasks.
BUGS_LOG = "bugs.log"


class Pool(enum.Enum):
    """Kinds of work with separate concurrency caps (builds load the CPU, pushes the network)."""

    PULL = "pull"
    BUILD = "build"
    PUSH = "push"


class TaskFailedError(Exception):
    """A task failed for a reason worth telling the user (not a bug)."""


class TaskCancelledError(TaskFailedError):
    """A task was stopped by a cancellation (second Ctrl-C)."""


@attrs.frozen
class Task:
    key: str
    needs: tuple[str, ...]
    pool: Pool
    run: Callable[[], str | None] = attrs.field(eq=False, repr=False)


@attrs.frozen
class TaskResult:
    key: str
    outcome: Outcome
    started: float | None = None  # seconds since the run began
    duration: float | None = None
    detail: str | None = None
    error: str | None = None
    # An unexpected exception's traceback: a bug, shown whole (see record_bugs).
    trace: str | None = attrs.field(default=None, eq=False, repr=False)


def bug_result(
    key: str, exc: Exception, started: float | None, duration: float | None
) -> TaskResult:
    """A task that raised what no task should: failed, with its traceback kept."""
    trace = "".join(traceback.format_exception(exc))
    log.debug("bug in %s:\n%s", key, trace)
    return TaskResult(
        key, Outcome.FAILED, started, duration, error=f"internal error: {exc!r}", trace=trace
    )


def record_bugs(results: Mapping[str, TaskResult], run_dir: Path) -> dict[str, TaskResult]:
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
    def task_started(self, key: str) -> None: ...

    def task_finished(self, result: TaskResult) -> None: ...


@attrs.define
class Interrupt:
    """Set by the caller's signal handling: first stop starting tasks, then cancel."""

    stop: threading.Event = attrs.field(factory=threading.Event)
    _cancellers: list[Callable[[], None]] = attrs.field(factory=list)

    def on_cancel(self, callback: Callable[[], None]) -> None:
        self._cancellers.append(callback)

    def cancel(self) -> None:
        """Stop, and abort running work through the callbacks registered by its owners."""
        self.stop.set()
        for callback in list(self._cancellers):
            callback()


def _missing_needs(tasks: Sequence[Task]) -> list[str]:
    keys = {t.key for t in tasks}
    return [f"{t.key} needs {n}" for t in tasks for n in t.needs if n not in keys]


def run_tasks(
    tasks: Sequence[Task],
    limits: Mapping[Pool, int],
    listener: Listener,
    interrupt: Interrupt | None = None,
) -> dict[str, TaskResult]:
    """Run every task whose needs succeeded; at most limits[pool] at once per pool."""
    broken = _missing_needs(tasks)
    if broken:
        raise ValueError("tasks need unknown tasks: " + ", ".join(broken))
    interrupt = interrupt or Interrupt()
    begin = time.monotonic()
    by_key = {t.key: t for t in tasks}
    order = {t.key: i for i, t in enumerate(tasks)}
    results: dict[str, TaskResult] = {}
    running: dict[Future[str | None], tuple[Task, float]] = {}
    busy = dict.fromkeys(Pool, 0)
    total_workers = sum(max(1, limits.get(p, 1)) for p in Pool)

    def settle_skips() -> None:
        changed = True
        while changed:
            changed = False
            for task in tasks:
                if task.key in results:
                    continue
                bad = [
                    n
                    for n in task.needs
                    if n in results and results[n].outcome is not Outcome.SUCCEEDED
                ]
                if bad:
                    cause = results[bad[0]]
                    # Name the first failure, not the chain of skips it caused.
                    why = cause.error if cause.outcome is Outcome.SKIPPED else None
                    results[task.key] = TaskResult(
                        task.key,
                        Outcome.SKIPPED,
                        error=why or f"{cause.key.replace(':', ' ', 1)} {cause.outcome.value}",
                    )
                    listener.task_finished(results[task.key])
                    changed = True

    with ThreadPoolExecutor(max_workers=total_workers, thread_name_prefix="dockerpkg") as pool:
        while True:
            settle_skips()
            if not interrupt.stop.is_set():
                active = {t.key for t, _ in running.values()}
                ready = sorted(
                    (
                        t
                        for t in tasks
                        if t.key not in results
                        and t.key not in active
                        and all(n in results for n in t.needs)
                    ),
                    key=lambda t: order[t.key],
                )
                for task in ready:
                    if busy[task.pool] >= max(1, limits.get(task.pool, 1)):
                        continue
                    busy[task.pool] += 1
                    listener.task_started(task.key)
                    running[pool.submit(task.run)] = (task, time.monotonic())
            if not running:
                break
            done, _ = wait(list(running), timeout=0.5, return_when=FIRST_COMPLETED)
            for future in done:
                task, started = running.pop(future)
                busy[task.pool] -= 1
                results[task.key] = _result(
                    task, future, started - begin, time.monotonic() - started
                )
                listener.task_finished(results[task.key])
    for task in tasks:
        if task.key not in results:
            results[task.key] = TaskResult(task.key, Outcome.CANCELLED, error="run interrupted")
            listener.task_finished(results[task.key])
    return {key: results[key] for key in by_key}


def _result(task: Task, future: Future[str | None], started: float, duration: float) -> TaskResult:
    try:
        detail = future.result()
    except TaskCancelledError as exc:
        return TaskResult(task.key, Outcome.CANCELLED, started, duration, error=str(exc))
    except TaskFailedError as exc:
        return TaskResult(task.key, Outcome.FAILED, started, duration, error=str(exc))
    except Exception as exc:  # noqa: BLE001 (a bug must not hang the run; it is shown whole)
        return bug_result(task.key, exc, started, duration)
    return TaskResult(task.key, Outcome.SUCCEEDED, started, duration, detail=detail)
