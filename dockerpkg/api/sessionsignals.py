"""Ctrl-C and SIGTERM during a test session's run, handled as `build` handles them: the
first Ctrl-C stops starting steps, a second cancels running ones; SIGTERM cancels at once.
The run then ends with its report (interrupted), and the session raises KeyboardInterrupt
so the test runner stops and closes the session. Outside the runs, TermAsInterrupt makes
SIGTERM a KeyboardInterrupt while the session is open."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

from dockerpkg.effects.tasks import Interrupt

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def stopping_on_signals() -> Iterator[Interrupt]:
    """An Interrupt that SIGINT and SIGTERM set while the block runs (the previous handlers
    come back after). Off the main thread, where handlers cannot be set, a bare Interrupt."""
    interrupt = Interrupt()
    if threading.current_thread() is not threading.main_thread():
        yield interrupt
        return

    def on_signal(signum: int, frame: object) -> None:
        if signum == signal.SIGTERM or interrupt.stop.is_set():
            interrupt.cancel()
        else:
            interrupt.stop.set()

    previous = {signum: signal.signal(signum, on_signal) for signum in _SIGNALS}
    try:
        yield interrupt
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class TermAsInterrupt:
    """While a session is open (outside its runs too: a structure check, a user's test),
    SIGTERM raises KeyboardInterrupt in the main thread, as Ctrl-C does, so the test runner
    unwinds and the session's close() runs. restore() puts the previous handler back
    (idempotent). Off the main thread, where handlers cannot be set, it does nothing."""

    def __init__(self) -> None:
        self._previous: signal.Handlers | Callable[[int, FrameType | None], Any] | int | None
        self._previous = None
        self._set = False
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, _interrupt)
            self._set = True

    def restore(self) -> None:
        if self._set:
            self._set = False
            signal.signal(signal.SIGTERM, self._previous)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt
