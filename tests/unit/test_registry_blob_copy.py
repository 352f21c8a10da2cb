"""A blob copied into a repository by upload (effects/registry/writes.py `bring_blob`) when the
upload's PUT goes wrong: against a tiny in-process registry that, as a real one may, commits
a blob and then loses the answer (a reset connection), so that the PUT asked again finds its
upload used up; or loses an upload before the blob is in."""

from __future__ import annotations

import hashlib
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from dockerpkg.effects.registry.errors import RegistryError
from dockerpkg.effects.registry.gate import RegistryGates
from dockerpkg.effects.registry.session import RegistrySession
from dockerpkg.effects.registry.transport import RetryPolicy
from dockerpkg.effects.registry.writes import bring_blob
from tests.unit.test_registry_gate import FakeClock

CONTENT = b"the bytes of one layer"
DIGEST = "sha256:" + hashlib.sha256(CONTENT).hexdigest()


class _Registry(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, put_faults: list[str]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.put_faults = put_faults  # what the next PUTs do: "reset-after", "lose"
        self.uploads: dict[str, bool] = {}  # upload -> still open
        self.committed = False
        self.log: list[str] = []


class _Handler(BaseHTTPRequestHandler):
    """Just enough of the distribution API for one blob, never mounting."""

    protocol_version = "HTTP/1.1"
    server: _Registry

    def _answer(
        self, status: int, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:
        self.server.log.append(f"GET {self.path}")
        if self.path == "/v2/":
            self._answer(200, body=b"{}")
        elif self.path == f"/v2/src/blobs/{DIGEST}":
            self._answer(200, body=CONTENT)
        else:
            self._answer(404)

    def do_HEAD(self) -> None:
        self.server.log.append(f"HEAD {self.path}")
        there = self.path == f"/v2/dst/blobs/{DIGEST}" and self.server.committed
        self._answer(200 if there else 404)

    def do_POST(self) -> None:
        self.server.log.append(f"POST {self.path}")
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.server.lock:
            name = f"u{len(self.server.uploads) + 1}"
            self.server.uploads[name] = True
        self._answer(202, {"Location": f"/v2/dst/blobs/uploads/{name}"})

    def do_PUT(self) -> None:
        url = urlsplit(self.path)
        self.server.log.append(f"PUT {url.path}")
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        name = url.path.rsplit("/", 1)[-1]
        with self.server.lock:
            if not self.server.uploads.get(name):
                fault = "unknown"
            else:
                self.server.uploads[name] = False
                fault = self.server.put_faults.pop(0) if self.server.put_faults else "ok"
            digest = parse_qs(url.query).get("digest", [""])[0]
            if fault in ("ok", "reset-after"):
                self.server.committed = digest == DIGEST and body == CONTENT
        if fault == "reset-after":
            # The blob is in; its answer is lost with the connection.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
            return
        if fault == "ok":
            self._answer(201, {"Docker-Content-Digest": DIGEST})
            return
        self._answer(404, body=b'{"errors":[{"code":"BLOB_UPLOAD_UNKNOWN"}]}')

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def registry() -> Iterator[Callable[[list[str]], tuple[_Registry, RegistrySession]]]:
    servers: list[_Registry] = []

    def start(put_faults: list[str]) -> tuple[_Registry, RegistrySession]:
        server = _Registry(put_faults)
        servers.append(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        clock = FakeClock()  # the backoff after the reset is recorded, not slept
        session = RegistrySession(
            f"127.0.0.1:{server.server_address[1]}",
            None,
            ca_bundle=None,
            workers=1,
            retry=RetryPolicy(),
            env={},
            interrupter=None,
            gates=RegistryGates(clock=clock, sleep=clock.sleep),
        )
        return server, session

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_a_put_whose_answer_was_lost_after_the_commit_is_done(
    registry: Callable[[list[str]], tuple[_Registry, RegistrySession]],
) -> None:
    server, session = registry(["reset-after"])
    bring_blob(session, "src", "dst", DIGEST)
    assert server.committed
    puts = [r for r in server.log if r.startswith("PUT ")]
    # Asked again after the reset, the PUT found its upload used up; the blob was there.
    assert puts == ["PUT /v2/dst/blobs/uploads/u1"] * 2
    assert len(server.uploads) == 1  # no second upload
    assert server.log[-1] == f"HEAD /v2/dst/blobs/{DIGEST}"


def test_an_upload_lost_before_the_commit_is_started_again_once(
    registry: Callable[[list[str]], tuple[_Registry, RegistrySession]],
) -> None:
    server, session = registry(["lose"])
    bring_blob(session, "src", "dst", DIGEST)
    assert server.committed
    assert [r for r in server.log if r.startswith(("PUT ", "POST "))] == [
        f"POST /v2/dst/blobs/uploads/?mount={DIGEST}&from=src",
        "PUT /v2/dst/blobs/uploads/u1",
        "POST /v2/dst/blobs/uploads/",
        "PUT /v2/dst/blobs/uploads/u2",
    ]


def test_an_upload_lost_twice_fails(
    registry: Callable[[list[str]], tuple[_Registry, RegistrySession]],
) -> None:
    server, session = registry(["lose", "lose"])
    with pytest.raises(RegistryError, match="404"):
        bring_blob(session, "src", "dst", DIGEST)
    assert not server.committed
    assert len(server.uploads) == 2
