"""Every wait of a build's start ends within a second of a cancellation (Ctrl-C, SIGTERM) or
of its deadline: against real sockets and processes that never answer."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from dockerpkg.core.builders import TLSFiles
from dockerpkg.effects.session import build_session
from dockerpkg.effects.sshagents import _first_line
from dockerpkg.effects.waits import CancelledError, Patience, TimedOutError, send_aside
from tests.support.services import make_client_certificate, make_server_certificate


@contextlib.contextmanager
def silent_server(path: Path) -> Iterator[str]:
    """A unix socket at PATH that accepts connections and never says a word."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(8)
    accepted: list[socket.socket] = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                accepted.append(server.accept()[0])

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"unix://{path}"
    finally:
        server.close()
        for sock in accepted:
            sock.close()


def cancelled_after(seconds: float) -> threading.Event:
    cancel = threading.Event()
    threading.Timer(seconds, cancel.set).start()
    return cancel


def ends_within(limit: float, wait: Callable[[], object], error: type[Exception]) -> None:
    started = time.monotonic()
    with pytest.raises(error):
        wait()
    assert time.monotonic() - started < limit


def test_a_session_the_engine_never_opens_ends_on_cancel(tmp_path: Path) -> None:
    with silent_server(tmp_path / "engine.sock") as host:

        def open_session() -> None:
            patience = Patience(cancelled_after(0.3))
            with build_session(host, None, {}, patience=patience):
                pass

        ends_within(1.3, open_session, CancelledError)


def test_a_session_the_engine_never_opens_ends_at_the_deadline(tmp_path: Path) -> None:
    with silent_server(tmp_path / "engine.sock") as host:

        def open_session() -> None:
            with build_session(host, None, {}, patience=Patience(None, time.monotonic() + 0.3)):
                pass

        ends_within(1.3, open_session, TimedOutError)


def test_a_request_never_answered_ends_on_cancel() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    try:
        url = f"http://127.0.0.1:{port}/build"
        ends_within(
            1.3,
            lambda: send_aside(
                lambda: requests.post(url, data=b"x", timeout=60), cancelled_after(0.3)
            ),
            CancelledError,
        )
    finally:
        server.close()


def test_an_agent_that_never_says_it_listens_ends_on_cancel() -> None:
    reader, writer = os.pipe()
    try:
        ends_within(
            1.3, lambda: _first_line(reader, Patience(cancelled_after(0.3))), CancelledError
        )
    finally:
        os.close(reader)
        os.close(writer)


def test_a_tls_engine_that_never_finishes_the_handshake_ends_on_cancel(tmp_path: Path) -> None:
    """A tcp:// engine with TLS that accepts the connection and never answers the handshake:
    the session's wait ends on the cancellation (it waited for ever)."""
    ca, _, _ = make_server_certificate(tmp_path / "certs")
    cert, key = make_client_certificate(tmp_path / "certs")
    server = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(server.accept()[0]), daemon=True).start()
    host = f"tcp://127.0.0.1:{server.getsockname()[1]}"
    try:

        def open_session() -> None:
            patience = Patience(cancelled_after(0.3))
            with build_session(host, TLSFiles(str(ca), str(cert), str(key)), {}, patience=patience):
                pass

        ends_within(1.3, open_session, CancelledError)
    finally:
        server.close()
        for sock in accepted:
            sock.close()
