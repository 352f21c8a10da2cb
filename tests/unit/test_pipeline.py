"""Pipelined HEADs over a real socket, against a server that answers as each test scripts.

A real registry never closes a connection halfway through a batch or answers garbage on
demand; these tests make it happen to show what comes back (None: ask again the ordinary way).
The ordinary answers over TLS are covered against real registries in the integration tests.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from dockerpkg.effects.pipeline import Answer, Endpoint, Head, PipelinedConnection

# What the server does on one connection: gets the requests read so far, returns the bytes to
# send back and whether to hang up afterwards.
Script = Callable[[list[bytes]], tuple[bytes, bool]]


class _Server:
    def __init__(self, script: Script, expect: int) -> None:
        self.script = script
        self.expect = expect  # requests to read before answering
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.connections = 0
        self.requests: list[bytes] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        port: int = self.listener.getsockname()[1]
        return port

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._handle, args=(connection,), daemon=True).start()

    def _handle(self, connection: socket.socket) -> None:
        with connection:
            buffer = b""
            while True:
                while buffer.count(b"\r\n\r\n") < self.expect:
                    chunk = connection.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                batch = buffer.split(b"\r\n\r\n")[: self.expect]
                buffer = b"\r\n\r\n".join(buffer.split(b"\r\n\r\n")[self.expect :])
                self.requests += batch
                answer, hang_up = self.script(batch)
                connection.sendall(answer)
                if hang_up:
                    return

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def serve() -> Iterator[Callable[[Script, int], _Server]]:
    servers: list[_Server] = []

    def start(script: Script, expect: int) -> _Server:
        servers.append(_Server(script, expect))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def _connection(server: _Server) -> PipelinedConnection:
    return PipelinedConnection(Endpoint("127.0.0.1", server.port, None, 5.0, 5.0), "registry.test")


def _codes(answers: list[Answer | None]) -> list[int | None]:
    return [None if answer is None else answer.status for answer in answers]


def _heads(*paths: str) -> list[Head]:
    return [Head(path, {"Accept": "application/json"}) for path in paths]


def _status(code: int, *headers: str) -> bytes:
    reason = {100: "Continue", 200: "OK", 404: "Not Found", 401: "Unauthorized"}[code]
    lines = [f"HTTP/1.1 {code} {reason}", "Content-Length: 123", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _by_path(codes: dict[bytes, int]) -> Script:
    """Answers each request by the status its path maps to; keeps the connection open."""

    def script(batch: list[bytes]) -> tuple[bytes, bool]:
        out = b""
        for request in batch:
            path = request.split(b" ")[1]
            out += _status(codes[path])
        return out, False

    return script


def test_answers_come_back_in_order_on_one_connection(serve: Callable[..., _Server]) -> None:
    server = serve(_by_path({b"/a": 200, b"/b": 404, b"/c": 200}), 3)
    connection = _connection(server)
    try:
        assert _codes(connection.heads(_heads("/a", "/b", "/c"))) == [200, 404, 200]
        assert _codes(connection.heads(_heads("/c", "/a", "/b"))) == [200, 200, 404]
    finally:
        connection.close()
    assert server.connections == 1
    # Every request is a complete HEAD with the Host and the headers given.
    assert server.requests[0].split(b"\r\n") == [
        b"HEAD /a HTTP/1.1",
        b"Host: registry.test",
        b"Accept: application/json",
    ]
    assert [r.split(b" ")[1] for r in server.requests] == [b"/a", b"/b", b"/c", b"/c", b"/a", b"/b"]


def test_the_manifest_digest_comes_with_the_answer(serve: Callable[..., _Server]) -> None:
    digest = "sha256:" + "ab" * 32

    def script(batch: list[bytes]) -> tuple[bytes, bool]:
        found = _status(200, f"docker-content-digest:  {digest} ", "Connection: keep-alive")
        return found + _status(404) + _status(200), False

    server = serve(script, 3)
    connection = _connection(server)
    try:
        assert connection.heads(_heads("/a", "/b", "/c")) == [
            Answer(200, digest),
            Answer(404),
            Answer(200),
        ]
    finally:
        connection.close()
    assert server.connections == 1


def test_an_answer_split_across_reads_and_interim_answers(serve: Callable[..., _Server]) -> None:
    def script(batch: list[bytes]) -> tuple[bytes, bool]:
        return _status(100) + _status(200) + _status(404), False

    server = serve(script, 2)
    connection = _connection(server)
    try:
        assert _codes(connection.heads(_heads("/a", "/b"))) == [200, 404]
    finally:
        connection.close()


def test_connection_close_leaves_the_rest_unanswered_then_reconnects(
    serve: Callable[..., _Server],
) -> None:
    def script(batch: list[bytes]) -> tuple[bytes, bool]:
        return _status(200) + _status(404, "Connection: close"), True

    server = serve(script, 4)
    connection = _connection(server)
    try:
        assert _codes(connection.heads(_heads("/a", "/b", "/c", "/d"))) == [200, 404, None, None]
        assert _codes(connection.heads(_heads("/c", "/d", "/e", "/f"))) == [200, 404, None, None]
    finally:
        connection.close()
    assert server.connections == 2


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (b"", [None, None]),  # hung up without a word
        (b"SSH-2.0-OpenSSH\r\n\r\n", [None, None]),  # not HTTP at all
        (b"HTTP/1.1 2x0 Odd\r\n\r\n", [None, None]),  # no status code
        (_status(200), [200, None]),  # one answer, then the connection ended
        (_status(404).replace(b"HTTP/1.1", b"HTTP/1.0"), [404, None]),  # 1.0: closes after it
    ],
)
def test_broken_answers_are_none(
    serve: Callable[..., _Server], answer: bytes, expected: list[int | None]
) -> None:
    server = serve(lambda batch: (answer, True), 2)
    connection = _connection(server)
    try:
        assert _codes(connection.heads(_heads("/a", "/b"))) == expected
    finally:
        connection.close()


def test_unreachable_is_none_for_all() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()  # nobody listens there now
    connection = PipelinedConnection(Endpoint("127.0.0.1", port, None, 5.0, 5.0), "x")
    assert _codes(connection.heads(_heads("/a", "/b"))) == [None, None]


def test_headers_too_long_is_none(serve: Callable[..., _Server]) -> None:
    huge = b"HTTP/1.1 200 OK\r\nX-Filler: " + b"x" * 70_000
    server = serve(lambda batch: (huge, False), 1)
    connection = _connection(server)
    try:
        assert _codes(connection.heads(_heads("/a"))) == [None]
    finally:
        connection.close()


def test_the_wait_asked_comes_with_the_answer(serve: Callable[..., _Server]) -> None:
    """A 429 or 503 in a batch brings its Retry-After, for the host's backoff."""

    def script(batch: list[bytes]) -> tuple[bytes, bool]:
        limited = b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 2\r\nContent-Length: 0\r\n\r\n"
        return limited + _status(200), False

    server = serve(script, 2)
    connection = _connection(server)
    try:
        assert connection.heads(_heads("/a", "/b")) == [Answer(429, None, "2"), Answer(200)]
    finally:
        connection.close()
