"""The DAG scheduler: order, concurrency caps, failure isolation and interruption."""

from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from dockerpkg.core.report import Outcome
from dockerpkg.effects.progress import LineProgress, LiveProgress
from dockerpkg.effects.scheduler import (
    BUGS_LOG,
    Interrupt,
    Pool,
    Task,
    TaskFailedError,
    TaskResult,
    record_bugs,
    run_tasks,
)


class Recorder:
    """A listener that keeps every event, with the time it happened."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, float]] = []
        self.lock = threading.Lock()

    def task_started(self, key: str) -> None:
        with self.lock:
            self.events.append(("start", key, time.monotonic()))

    def task_finished(self, result: TaskResult) -> None:
        with self.lock:
            self.events.append((result.outcome.value, result.key, time.monotonic()))

    def time_of(self, kind: str, key: str) -> float:
        return next(t for k, name, t in self.events if k == kind and name == key)


def sleeper(seconds: float, fail: bool = False) -> Callable[[], str | None]:
    def run() -> str:
        time.sleep(seconds)
        if fail:
            raise TaskFailedError("boom")
        return "ok"

    return run


def task(key: str, *needs: str, seconds: float = 0.05, fail: bool = False) -> Task:
    return Task(key, needs, Pool.BUILD, sleeper(seconds, fail))


class TestOrdering:
    """A task starts only after everything it needs has succeeded."""

    def test_needs_first(self) -> None:
        rec = Recorder()
        tasks = [task("a"), task("b", "a"), task("c", "a"), task("d", "b", "c")]
        results = run_tasks(tasks, {Pool.BUILD: 4}, rec)
        assert all(r.outcome is Outcome.SUCCEEDED for r in results.values())
        assert rec.time_of("start", "b") >= rec.time_of("succeeded", "a")
        assert rec.time_of("start", "d") >= rec.time_of("succeeded", "c")

    def test_independent_branches_overlap(self) -> None:
        rec = Recorder()
        tasks = [task("x", seconds=0.3), task("y", seconds=0.3)]
        run_tasks(tasks, {Pool.BUILD: 2}, rec)
        assert rec.time_of("start", "y") < rec.time_of("succeeded", "x")

    def test_cap_is_respected(self) -> None:
        rec = Recorder()
        tasks = [task(f"t{i}", seconds=0.05) for i in range(6)]
        run_tasks(tasks, {Pool.BUILD: 2}, rec)
        running = peak = 0
        for kind, _, _ in sorted(rec.events, key=lambda e: e[2]):
            running += 1 if kind == "start" else -1
            peak = max(peak, running)
        assert peak <= 2


class TestFailures:
    """A failure skips what needs it, with the reason; the rest goes on."""

    def test_dependents_skipped_siblings_continue(self) -> None:
        tasks = [task("a", fail=True), task("b", "a"), task("c", "b"), task("d")]
        results = run_tasks(tasks, {Pool.BUILD: 2}, Recorder())
        assert results["a"].outcome is Outcome.FAILED
        assert results["a"].error == "boom"
        assert results["b"].outcome is Outcome.SKIPPED
        assert results["c"].outcome is Outcome.SKIPPED
        assert results["c"].error == "a failed"
        assert results["d"].outcome is Outcome.SUCCEEDED


class TestInterrupt:
    """After a stop, running tasks finish and nothing new starts."""

    def test_stop_lets_running_finish(self) -> None:
        interrupt = Interrupt()
        rec = Recorder()

        def first() -> str:
            interrupt.stop.set()
            time.sleep(0.1)
            return "done"

        tasks = [Task("a", (), Pool.BUILD, first), task("b", "a"), task("c", "a")]
        results = run_tasks(tasks, {Pool.BUILD: 1}, rec, interrupt)
        assert results["a"].outcome is Outcome.SUCCEEDED
        assert results["b"].outcome is Outcome.CANCELLED
        assert results["c"].outcome is Outcome.CANCELLED


class TestProgress:
    """Progress views: one timestamped line per event; a status line on a terminal."""

    def test_lines_and_quiet(self) -> None:
        stream = io.StringIO()
        progress = LineProgress(stream, total=2)
        progress.task_started("build:a")
        progress.task_finished(TaskResult("build:a", Outcome.SUCCEEDED, 0.0, 1.5))
        progress.task_finished(TaskResult("verify:a", Outcome.FAILED, 1.5, 0.1, error="exit 1"))
        lines = stream.getvalue().splitlines()
        assert lines[0].endswith("start   build a")
        assert lines[1].endswith("done    build a in 1.5s (1/2)")
        assert lines[2].endswith("FAILED  verify a: exit 1 (2/2)")
        quiet = io.StringIO()
        progress = LineProgress(quiet, total=2, quiet=True)
        progress.task_started("build:a")
        progress.task_finished(TaskResult("build:a", Outcome.SUCCEEDED, 0.0, 1.5))
        assert quiet.getvalue() == ""

    def test_live_status_line(self) -> None:
        stream = io.StringIO()
        progress = LiveProgress(stream, total=3)
        progress.task_started("build:a")
        progress.task_started("build:b")
        assert stream.getvalue().rstrip().endswith("0/3 done, 0s | build a, build b")
        progress.task_finished(TaskResult("build:a", Outcome.SUCCEEDED, 0.0, 0.2))
        assert stream.getvalue().endswith("1/3 done, 0s | build b")
        progress.close()
        assert stream.getvalue().endswith("\r\033[K")


class TestBugs:
    """An unexpected exception in a task is a bug: shown whole, not only as a row."""

    def test_traceback_kept_written_and_named(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        def broken() -> str | None:
            return {"a": "b"}["missing"]

        tasks = [Task("build:x", (), Pool.BUILD, broken), task("verify:x", "build:x")]
        with caplog.at_level(logging.DEBUG, logger="dockerpkg.effects.scheduler"):
            results = record_bugs(run_tasks(tasks, {Pool.BUILD: 1}, Recorder()), tmp_path)
        bug = results["build:x"]
        assert bug.outcome is Outcome.FAILED
        assert bug.error == (
            f"internal error: KeyError('missing') (a bug in dockerpkg: the traceback is in "
            f"{tmp_path / BUGS_LOG})"
        )
        written = (tmp_path / BUGS_LOG).read_text(encoding="utf-8")
        assert written.startswith("== build:x ==\nTraceback (most recent call last):\n")
        assert 'return {"a": "b"}["missing"]' in written
        assert "KeyError: 'missing'" in written
        # With --debug (the DEBUG level), the traceback goes to stderr as well.
        assert any("Traceback" in r.getMessage() for r in caplog.records)
        assert results["verify:x"].outcome is Outcome.SKIPPED
        assert results["verify:x"].trace is None

    def test_no_bug_no_file(self, tmp_path: Path) -> None:
        results = record_bugs(run_tasks([task("a")], {Pool.BUILD: 1}, Recorder()), tmp_path)
        assert results["a"].outcome is Outcome.SUCCEEDED
        assert not (tmp_path / BUGS_LOG).exists()
