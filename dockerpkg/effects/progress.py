"""Progress of a run: one timestamped line per event, or a live status line on a terminal."""

from __future__ import annotations

import threading
import time
from typing import IO

from dockerpkg.core.plan import StepKey
from dockerpkg.core.report import Outcome
from dockerpkg.effects.tasks import TaskResult


class LineProgress:
    """One line per event (for CI logs); `quiet` keeps only failures."""

    def __init__(self, stream: IO[str], *, total: int, quiet: bool = False) -> None:
        self._stream = stream
        self._quiet = quiet
        self._total = total
        self._done = 0
        self._lock = threading.Lock()
        self._begin = time.monotonic()

    def _emit(self, text: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        self._stream.write(f"[{stamp}] {text}\n")
        self._stream.flush()

    def task_started(self, key: StepKey) -> None:
        if not self._quiet:
            with self._lock:
                self._emit(f"start   {key.words}")

    def task_finished(self, result: TaskResult) -> None:
        with self._lock:
            self._done += 1
            what = result.key.words
            count = f"({self._done}/{self._total})"
            if result.outcome is Outcome.SUCCEEDED:
                if not self._quiet:
                    detail = f" [{result.detail}]" if result.detail else ""
                    self._emit(f"done    {what} in {result.duration or 0:.1f}s{detail} {count}")
            elif result.outcome is Outcome.FAILED:
                self._emit(f"FAILED  {what}: {result.error} {count}")
            elif not self._quiet:
                self._emit(f"{result.outcome.value:<7} {what}: {result.error} {count}")

    def task_moved(self, image: str, finished: list[StepKey], why: str) -> None:
        """IMAGE left a lost builder: its FINISHED steps run again, so count them again."""
        with self._lock:
            self._done -= len(finished)
            self._emit(f"moved   {image}: {why}")


class LiveProgress(LineProgress):
    """On a terminal: events as lines, plus a status line (done/total, running, elapsed)."""

    def __init__(self, stream: IO[str], *, total: int, quiet: bool = False) -> None:
        super().__init__(stream, total=total, quiet=quiet)
        self._running: list[StepKey] = []

    def _emit(self, text: str) -> None:
        self._stream.write("\r\033[K")
        super()._emit(text)
        shown = ", ".join(key.words for key in self._running[:4])
        running = shown + (" ..." if len(self._running) > 4 else "")
        elapsed = time.monotonic() - self._begin
        self._stream.write(f"{self._done}/{self._total} done, {elapsed:.0f}s | {running}")
        self._stream.flush()

    def task_started(self, key: StepKey) -> None:
        with self._lock:
            self._running.append(key)
        super().task_started(key)

    def task_finished(self, result: TaskResult) -> None:
        with self._lock:
            if result.key in self._running:
                self._running.remove(result.key)
        super().task_finished(result)

    def task_moved(self, image: str, finished: list[StepKey], why: str) -> None:
        with self._lock:
            self._running = [key for key in self._running if key.image != image]
        super().task_moved(image, finished, why)

    def close(self) -> None:
        self._stream.write("\r\033[K")
        self._stream.flush()
