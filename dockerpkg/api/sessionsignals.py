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
_Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers


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


class TermGuard:
    """The one SIGTERM handler of every open session of the process. A signal's handler is
    the process's: sessions that each saved and put back the handler they found would put
    back each other's (closed out of order) and leave theirs for good. So the guard counts
    the open sessions: the first installs the handler, the last close puts the previous one
    back. It installs nothing over a handler Python did not set (None) nor over SIG_IGN (the
    process was told to ignore SIGTERM), and touches handlers only in the main thread (the
    only one allowed to): a close elsewhere only counts, and a later close in the main
    thread restores. It puts the previous handler back only if ours is still the one set
    (whoever replaced it keeps theirs)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open = 0
        self._installed = False
        self._previous: _Handler = signal.SIG_DFL

    @property
    def open_sessions(self) -> int:
        return self._open

    def enter(self) -> None:
        """A session opens: the handler is installed if it can be and is not yet."""
        with self._lock:
            self._open += 1
            if self._installed or not _in_main_thread():
                return
            current = signal.getsignal(signal.SIGTERM)
            if current is None or current == signal.SIG_IGN:
                return
            signal.signal(signal.SIGTERM, _interrupt)
            self._previous = current
            self._installed = True

    def leave(self) -> None:
        """A session closes: the last one (or a later close in the main thread) puts the
        previous handler back."""
        with self._lock:
            self._open = max(self._open - 1, 0)
            if self._open or not self._installed or not _in_main_thread():
                return
            self._installed = False
            if signal.getsignal(signal.SIGTERM) is _interrupt:
                signal.signal(signal.SIGTERM, self._previous)


# The process's one guard: signal handlers are state of the process, so their count is too.
PROCESS_TERM_GUARD = TermGuard()


class TermAsInterrupt:
    """While a session is open (outside its runs too: a structure check, a user's test),
    SIGTERM raises KeyboardInterrupt in the main thread, as Ctrl-C does, so the test runner
    unwinds and the session's close() runs. restore() ends this session's hold (idempotent);
    GUARD puts the previous handler back once no session holds it (see TermGuard)."""

    def __init__(self, guard: TermGuard = PROCESS_TERM_GUARD) -> None:
        self._guard = guard
        self._held = True
        guard.enter()

    def restore(self) -> None:
        if self._held:
            self._held = False
            self._guard.leave()


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt
