"""How a step's waits end: on a cancellation (Ctrl-C, SIGTERM) or its deadline, within a
fraction of a second, whatever it waits for.

A daemon's stream is cut from another thread (`Guard`): closing our end of the connection is
how the daemon learns to stop. A request still being sent, or waiting for its answer's head,
is waited for aside (`send_aside`) and abandoned. Other waits (a socket, a process) look at
their `Patience` at least every `Patience.POLL` seconds.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

import attrs
import requests


class DaemonError(Exception):
    """The daemon refused or failed; the message is for the user."""


class CancelledError(DaemonError):
    """The run was cancelled while the daemon was streaming."""


class TimedOutError(DaemonError):
    """A stream went on past its deadline and was cut."""


@attrs.frozen
class Patience:
    """When a step's waits must end: CANCEL set, or DEADLINE (time.monotonic()) passed."""

    POLL = 0.1  # seconds between looks

    cancel: threading.Event | None = None
    deadline: float | None = None

    def check(self) -> None:
        """CancelledError or TimedOutError when the wait must end; else nothing."""
        if self.cancel is not None and self.cancel.is_set():
            raise CancelledError("cancelled")
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise TimedOutError("timed out")


# docker-py hands out only the generator reading a stream, not the HTTP response under it; a
# session hook notes each thread's last response, so that the stream can be cut.
_last_response = threading.local()


def _note_response(response: requests.Response, *args: Any, **kwargs: Any) -> requests.Response:
    _last_response.value = response
    return response


def remember_responses(client: Any) -> None:
    """Have the docker-py CLIENT note each thread's last response (see Guard.watch)."""
    hooks = client.hooks.setdefault("response", [])
    if _note_response not in hooks:
        hooks.append(_note_response)


class Guard:
    """Cuts the stream of one daemon call once CANCEL is set or DEADLINE (monotonic) passes.

    A watcher thread looks every POLL seconds; `reason` says afterwards why it cut, if it did.
    """

    POLL = Patience.POLL

    def __init__(self, cancel: threading.Event | None, deadline: float | None) -> None:
        self._cancel = cancel
        self._deadline = deadline
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.reason: type[DaemonError] | None = None

    @property
    def patience(self) -> Patience:
        return Patience(self._cancel, self._deadline)

    def __enter__(self) -> Guard:
        _last_response.value = None
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        with self._lock:
            self._done.set()
        if self._thread is not None:
            self._thread.join()

    def watch(self, response: requests.Response | None = None) -> None:
        """Watch RESPONSE's stream, by default that of the request this thread has just sent."""
        if response is None:
            response = getattr(_last_response, "value", None)
        if response is None or (self._cancel is None and self._deadline is None):
            return
        self._thread = threading.Thread(
            target=self._run, args=(response,), name="dockerpkg-stream-guard", daemon=True
        )
        self._thread.start()

    def _run(self, response: requests.Response) -> None:
        while not self._done.wait(self._pause()):
            if self._cancel is not None and self._cancel.is_set():
                reason: type[DaemonError] = CancelledError
            elif self._deadline is not None and time.monotonic() >= self._deadline:
                reason = TimedOutError
            else:
                continue
            with self._lock:
                if not self._done.is_set():
                    self.reason = reason
                    _cut(response)
            return

    def _pause(self) -> float:
        pause = self.POLL if self._cancel is not None else 3600.0
        if self._deadline is not None:
            pause = min(pause, max(0.0, self._deadline - time.monotonic()))
        return pause

    def raise_if_cut(self) -> None:
        if self.reason is not None:
            raise self.reason("cancelled" if self.reason is CancelledError else "timed out")


def _cut(response: requests.Response) -> None:
    """Shut the connection under RESPONSE down: a read blocked on it in another thread ends."""
    connection = getattr(response.raw, "connection", None)
    sock = getattr(connection, "sock", None)
    if isinstance(sock, socket.socket):
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        else:
            return
    response.close()


T = TypeVar("T")


def send_aside(
    send: Callable[[], T], cancel: threading.Event | None, deadline: float | None = None
) -> T:
    """SEND's value, waited for in this thread while SEND (a request: sending its body, then
    waiting for the head of the answer) runs in another; a set CANCEL or a passed DEADLINE
    ends the wait (CancelledError, TimedOutError) and the answer, if it comes, is closed
    unread. The response SEND's thread noted (see remember_responses) is noted for this
    thread too, for `Guard.watch`."""
    box: dict[str, Any] = {}
    done = threading.Event()
    lock = threading.Lock()

    def run() -> None:
        _last_response.value = None
        try:
            value = send()
        except BaseException as exc:  # noqa: BLE001 (handed to the waiting thread, which raises it)
            box["error"] = exc
        else:
            noted = getattr(_last_response, "value", None)
            with lock:
                if box.get("abandoned"):
                    _close(value, noted)
                else:
                    box["value"], box["noted"] = value, noted
        finally:
            done.set()

    threading.Thread(target=run, name="dockerpkg-request", daemon=True).start()
    patience = Patience(cancel, deadline)
    while not done.wait(Patience.POLL):
        try:
            patience.check()
        except DaemonError:
            with lock:
                box["abandoned"] = True
                late, noted = box.pop("value", None), box.pop("noted", None)
            _close(late, noted)
            raise
    if "error" in box:
        raise box["error"]
    _last_response.value = box.get("noted")
    return box["value"]  # type: ignore[no-any-return]


def _close(value: object, noted: requests.Response | None) -> None:
    for answer in (value, noted):
        if isinstance(answer, requests.Response):
            answer.close()
