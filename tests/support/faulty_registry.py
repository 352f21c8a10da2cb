"""A registry that misbehaves, as a real process: for tests of what dockerpkg does about it.

Run as a program (standard library only) it serves plain HTTP on a free 127.0.0.1 port, prints
the port, and records every request as one line "METHOD PATH" in a log file. What it answers:

- ``status``: every request gets STATUS (say 500 or 503); with ``--ping-ok`` the API root
  ``/v2/`` answers 200, so a client gets as far as asking about images.
- ``hang``: connections are accepted and never answered.
- ``stall``: the API root answers 200; a manifest's GET gets its status line and headers
  (200, a length) and then never its body; any other request is never answered: what a
  daemon pulling from it waits on for ever.
- ``--fail-first N`` (with ``status``): only the first N requests for manifests get STATUS;
  later ones are answered 404, as by an empty registry that has recovered.
- ``--absent-first N`` (with ``status``): the first N requests for each manifest are answered
  404 (not published), later ones for it STATUS: a registry that fails after the check that
  comes before a push.

- ``proxy``: every request is passed on to the registry ``--upstream`` (plain HTTP), except
  the first ``--fail-times`` requests whose "METHOD PATH" matches ``--fail-matching``, which
  get STATUS: a real registry that fails one kind of request (a `PUT` of `latest`, say);
  requests matching ``--slow-matching`` are passed on ``--slow`` seconds late.

A closed port, the other common fault, needs no process: see ``closed_port``.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import attrs

__all__ = ["FaultyRegistry", "closed_port", "start_faulty_registry"]


@attrs.frozen
class FaultyRegistry:
    """A running misbehaving registry."""

    host: str  # 127.0.0.1:PORT
    log: Path

    def requests(self) -> list[str]:
        """Every request received so far, as "METHOD PATH"."""
        if not self.log.exists():
            return []
        return self.log.read_text(encoding="utf-8").splitlines()


@contextlib.contextmanager
def start_faulty_registry(
    tmp: Path,
    mode: str,
    status: int = 503,
    *,
    ping_ok: bool = False,
    fail_first: int = 0,
    absent_first: int = 0,
    proxy: tuple[str, str, int] | None = None,
    slow: tuple[str, float] | None = None,
) -> Iterator[FaultyRegistry]:
    """Run the server for the duration of the block (MODE: "status", "hang", "stall" or
    "proxy", with PROXY: the upstream host, the pattern of the requests to fail and how many
    of them; and SLOW: the pattern of the requests to delay, and by how many seconds)."""
    log = Path(tempfile.mkstemp(prefix="faulty-registry-", suffix=".log", dir=tmp)[1])
    args = [sys.executable, str(Path(__file__)), mode, "--status", str(status), "--log", str(log)]
    if ping_ok:
        args.append("--ping-ok")
    if fail_first:
        args += ["--fail-first", str(fail_first)]
    if absent_first:
        args += ["--absent-first", str(absent_first)]
    if proxy is not None:
        upstream, pattern, times = proxy
        args += ["--upstream", upstream, "--fail-matching", pattern, "--fail-times", str(times)]
    if slow is not None:
        args += ["--slow-matching", slow[0], "--slow", str(slow[1])]
    process = subprocess.Popen(
        args, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, start_new_session=True
    )
    try:
        assert process.stdout is not None
        port = process.stdout.readline().strip()
        if not port.isdigit():
            raise RuntimeError(f"the faulty registry did not start (exit {process.poll()})")
        yield FaultyRegistry(f"127.0.0.1:{port}", log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def closed_port() -> str:
    """``127.0.0.1:PORT`` where nothing listens: connections are refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


# --- the server -------------------------------------------------------------------------------

# Headers of one connection, never passed on by a proxy.
_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"})


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, options: argparse.Namespace) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.options = options
        self.lock = threading.Lock()
        self.manifest_requests = 0
        self.per_path: dict[str, int] = {}
        self.failed = 0  # proxy: requests failed on purpose so far


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def handle(self) -> None:
        if self.server.options.mode == "hang":
            # Accept, then say nothing, for as long as the client waits.
            while True:
                time.sleep(3600)
        super().handle()

    def _stall(self) -> None:
        with self.server.lock, Path(self.server.options.log).open("a", encoding="utf-8") as log:
            log.write(f"{self.command} {self.path}\n")
        if self.path == "/v2/":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")
            return
        if self.command == "GET" and "/manifests/" in self.path:
            self.send_response(200)
            self.send_header("Content-Type", "application/vnd.docker.distribution.manifest.v2+json")
            self.send_header("Content-Length", "4096")
            self.end_headers()
            self.wfile.flush()
        while True:
            time.sleep(3600)

    def _body(self) -> bytes:
        """The request's body, sent with a length or in chunks."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _proxy(self) -> None:
        options = self.server.options
        body = self._body()
        request = f"{self.command} {self.path}"
        with self.server.lock, Path(options.log).open("a", encoding="utf-8") as log:
            log.write(request + "\n")
            failing = bool(re.fullmatch(options.fail_matching, request))
            failing = failing and self.server.failed < options.fail_times
            self.server.failed += failing
        if failing:
            self._fail(options.status)
            return
        if re.fullmatch(options.slow_matching, request):
            time.sleep(options.slow)
        # The Host header goes along: the registry's Location headers then name this proxy.
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
        upstream = http.client.HTTPConnection(options.upstream, timeout=120)
        try:
            upstream.request(self.command, self.path, body=body, headers=headers)
            response = upstream.getresponse()
            data = response.read()
        finally:
            upstream.close()
        self.send_response(response.status)
        for key, value in response.getheaders():
            if key.lower() not in _HOP | {"content-length"}:
                self.send_header(key, value)
        length = response.getheader("Content-Length") if self.command == "HEAD" else len(data)
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _fail(self, status: int) -> None:
        body = b'{"errors":[{"code":"UNAVAILABLE","message":"service unavailable"}]}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _answer(self) -> None:
        options = self.server.options
        if options.mode == "stall":
            self._stall()
            return
        if options.mode == "proxy":
            self._proxy()
            return
        with self.server.lock, Path(options.log).open("a", encoding="utf-8") as log:
            log.write(f"{self.command} {self.path}\n")
            if "/manifests/" in self.path:
                self.server.manifest_requests += 1
                self.server.per_path[self.path] = self.server.per_path.get(self.path, 0) + 1
            manifests = self.server.manifest_requests
            this_one = self.server.per_path.get(self.path, 0)
        if self.path == "/v2/" and options.ping_ok:
            status = 200
        elif "/manifests/" in self.path and (
            (options.fail_first and manifests > options.fail_first)
            or this_one <= options.absent_first
        ):
            status = 404
        else:
            status = options.status
        self._fail(status)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _answer  # noqa: N815 (http.server's names)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: requests go to the log file instead."""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["status", "hang", "stall", "proxy"])
    parser.add_argument("--status", type=int, default=503)
    parser.add_argument("--ping-ok", action="store_true")
    parser.add_argument("--fail-first", type=int, default=0)
    parser.add_argument("--absent-first", type=int, default=0)
    parser.add_argument("--upstream")
    parser.add_argument("--fail-matching", default="(?!)")
    parser.add_argument("--fail-times", type=int, default=0)
    parser.add_argument("--slow-matching", default="(?!)")
    parser.add_argument("--slow", type=float, default=0.0)
    parser.add_argument("--log", required=True)
    options = parser.parse_args()
    server = _Server(options)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
