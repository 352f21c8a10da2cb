"""The fault-injecting proxy (tests/support/faulty_registry.py), in front of a tiny upstream
served from this process: each scripted limit is answered as documented, everything else is
passed on, and the log says what happened and when."""

from __future__ import annotations

import email.utils
import http.client
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.support.faulty_registry import FaultProxy, Limit, start_fault_proxy

BLOB = bytes(range(256)) * 64


class _Upstream(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = BLOB if "/blobs/" in self.path else b'{"ok":true}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        # An absolute location naming the upstream, as a registry's upload answers carry.
        host, port = self.connection.getsockname()[:2]
        self.send_header("Location", f"http://{host}:{port}/v2/x/blobs/uploads/1")
        self.end_headers()
        self.wfile.write(body)

    do_HEAD = do_GET  # noqa: N815 (http.server's names)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def upstream() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def get(proxy: FaultProxy, path: str, method: str = "GET") -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection(proxy.host, timeout=10)
    connection.request(method, path)
    response = connection.getresponse()
    response.read()
    connection.close()
    return response


def test_passes_requests_on_and_rewrites_locations(upstream: str, tmp_path: Path) -> None:
    with start_fault_proxy(upstream, tmp_path) as proxy:
        answer = get(proxy, "/v2/x/manifests/1.0")
        assert answer.status == 200
        assert answer.getheader("Location") == f"http://{proxy.host}/v2/x/blobs/uploads/1"
        assert get(proxy, "/v2/x/manifests/1.0", "HEAD").status == 200
    entries = proxy.entries()
    assert [(e.method, e.path, e.status, e.fault) for e in entries] == [
        ("GET", "/v2/x/manifests/1.0", 200, None),
        ("HEAD", "/v2/x/manifests/1.0", 200, None),
    ]
    assert all(e.start <= e.end for e in entries)
    assert entries[0].conn != entries[1].conn
    assert proxy.requests() == ["GET /v2/x/manifests/1.0", "HEAD /v2/x/manifests/1.0"]


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        ("retry-after:2", 429),
        ("retry-after-date:3", 429),
        ("ghcr:250", 429),
        ("503", 503),
        ("502", 502),
    ],
)
def test_limits_the_first_requests_of_each_path(
    upstream: str, tmp_path: Path, kind: str, status: int
) -> None:
    limit = Limit("^GET /v2/x/manifests/", 1, kind)
    with start_fault_proxy(upstream, tmp_path, limits=[limit]) as proxy:
        first = get(proxy, "/v2/x/manifests/1.0")
        other = get(proxy, "/v2/x/manifests/2.0")
        again = get(proxy, "/v2/x/manifests/1.0")
        head = get(proxy, "/v2/x/manifests/1.0", "HEAD")
    assert (first.status, other.status, again.status, head.status) == (status, status, 200, 200)
    limited = proxy.entries()[0]
    assert limited.fault == kind
    hint = first.getheader("Retry-After")
    if kind == "retry-after:2":
        assert hint == "2"
        assert limited.until == pytest.approx(limited.end + 2, abs=0.5)
    elif kind == "retry-after-date:3":
        assert hint is not None
        when = email.utils.parsedate_to_datetime(hint).timestamp()
        assert when == limited.until
        assert when >= limited.start + 3
    elif kind == "ghcr:250":
        assert hint is None
        assert limited.until == pytest.approx(limited.end + 0.25, abs=0.5)
    else:
        assert hint is None
        assert limited.until is None
    assert len(proxy.waits("/v2/x/manifests/1.0", "GET")) == 1
    assert proxy.waits("/v2/x/manifests/1.0", "GET")[0] >= 0


def test_ghcr_body(upstream: str, tmp_path: Path) -> None:
    with start_fault_proxy(
        upstream, tmp_path, limits=[Limit("manifests", 1, "ghcr:10.48")]
    ) as proxy:
        connection = http.client.HTTPConnection(proxy.host, timeout=10)
        connection.request("GET", "/v2/x/manifests/1.0")
        body = json.loads(connection.getresponse().read())
        connection.close()
    assert body == {
        "errors": [
            {"code": "TOOMANYREQUESTS", "message": "retry-after: 10.48ms, allowed: 2000/minute"}
        ]
    }


def test_always_limited(upstream: str, tmp_path: Path) -> None:
    with start_fault_proxy(
        upstream, tmp_path, limits=[Limit("manifests", 0, "429-always")]
    ) as proxy:
        answers = [get(proxy, "/v2/x/manifests/1.0") for _ in range(3)]
    assert [a.status for a in answers] == [429, 429, 429]
    assert {a.getheader("Retry-After") for a in answers} == {"1"}
    assert proxy.early() != []  # asked again at once, sooner than told


def test_reset_mid_blob(upstream: str, tmp_path: Path) -> None:
    with start_fault_proxy(upstream, tmp_path, limits=[Limit("/blobs/", 1, "reset-blob")]) as proxy:
        connection = http.client.HTTPConnection(proxy.host, timeout=10)
        connection.request("GET", "/v2/x/blobs/sha256:1")
        response = connection.getresponse()
        assert response.status == 200
        with pytest.raises((http.client.IncompleteRead, ConnectionError)):
            response.read()
        connection.close()
        assert get(proxy, "/v2/x/blobs/sha256:1").status == 200
    assert [e.fault for e in proxy.entries()] == ["reset-blob", None]


def test_in_flight_from_the_log(upstream: str, tmp_path: Path) -> None:
    slow = ("GET /v2/x/manifests/.*", 0.5)
    with start_fault_proxy(upstream, tmp_path, slow=slow) as proxy:
        threads = [
            threading.Thread(target=get, args=(proxy, f"/v2/x/manifests/{n}")) for n in range(3)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        get(proxy, "/v2/x/manifests/after")
    assert proxy.max_in_flight() == 3
    assert proxy.max_in_flight("after") == 1


def test_a_bad_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown limit kind"):
        Limit("x", 1, "418")
