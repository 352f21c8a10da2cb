"""The SIGTERM handler test sessions share: installed by the first open session, put back
by the last close, whatever the order; never over a handler Python did not set nor over
SIG_IGN; handlers touched only in the main thread."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator

import pytest

from dockerpkg.api import sessionsignals
from dockerpkg.api.sessionsignals import TermAsInterrupt, TermGuard


@pytest.fixture(autouse=True)
def _default_sigterm() -> Iterator[None]:
    """Each test starts from SIG_DFL and leaves the handler it found."""
    before = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def _ours() -> bool:
    return signal.getsignal(signal.SIGTERM) is sessionsignals._interrupt


def test_sessions_closed_out_of_order_restore_on_the_last_close() -> None:
    guard = TermGuard()
    first, second = TermAsInterrupt(guard), TermAsInterrupt(guard)
    assert _ours()
    first.restore()
    assert _ours()  # the second session is still open
    first.restore()  # idempotent: it does not count twice
    assert _ours()
    second.restore()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    assert guard.open_sessions == 0


def test_sigterm_raises_keyboardinterrupt_while_one_is_open() -> None:
    guard = TermGuard()
    session = TermAsInterrupt(guard)
    with pytest.raises(KeyboardInterrupt):
        signal.raise_signal(signal.SIGTERM)
    session.restore()


def test_an_ignored_sigterm_stays_ignored() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    guard = TermGuard()
    session = TermAsInterrupt(guard)
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
    session.restore()
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN


def test_a_handler_python_did_not_set_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    # signal.getsignal() says None for a handler installed outside Python.
    monkeypatch.setattr(signal, "getsignal", lambda signum: None)
    calls: list[object] = []
    monkeypatch.setattr(signal, "signal", lambda *args: calls.append(args))
    guard = TermGuard()
    session = TermAsInterrupt(guard)
    session.restore()  # no TypeError from signal.signal(SIGTERM, None)
    assert calls == []
    assert guard.open_sessions == 0


def test_a_close_in_another_thread_leaves_the_handler_to_the_main_thread() -> None:
    guard = TermGuard()
    first, second = TermAsInterrupt(guard), TermAsInterrupt(guard)
    errors: list[BaseException] = []

    def close_both() -> None:
        try:
            first.restore()
            second.restore()
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    worker = threading.Thread(target=close_both)
    worker.start()
    worker.join()
    assert errors == []  # no ValueError: handlers are not touched off the main thread
    assert guard.open_sessions == 0
    assert _ours()  # still set: only the main thread may put the previous one back
    # The next session's close in the main thread does.
    TermAsInterrupt(guard).restore()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_a_handler_set_since_is_kept() -> None:
    guard = TermGuard()
    session = TermAsInterrupt(guard)

    def theirs(signum: int, frame: object) -> None:
        pass

    signal.signal(signal.SIGTERM, theirs)
    session.restore()
    assert signal.getsignal(signal.SIGTERM) is theirs
