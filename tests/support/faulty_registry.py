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
  requests matching ``--slow-matching`` are passed on ``--slow`` seconds late. Scripted
  limits (``--limit-matching REGEX --limit-times N --limit-kind KIND``, repeatable): the first
  N requests of each distinct "METHOD PATH" that REGEX finds (``re.search``) get KIND:
  ``retry-after:S`` (429, ``Retry-After: S``), ``retry-after-date:S`` (429, an HTTP date S
  seconds on, rounded up to the second), ``ghcr:MS`` (429 with GHCR's body, ``retry-after:
  MSms``), ``503`` (no hint), ``502``, ``reset-blob`` (the upstream's status line, headers
  and half its body, then a reset connection), ``429-always[:S]`` (every matching request,
  whatever N: 429 with ``Retry-After: S``, 1 by default). Upstream ``Location`` headers
  naming the upstream are rewritten to name the proxy.

The log has one JSON object a line per request, written when it is answered: ``method``,
``path``, ``status`` (the status sent; None when nothing was), ``start`` and ``end``
(``time.time()`` when the request arrived and when its answer was sent), ``conn`` (which
client connection carried it), ``fault`` (the scripted KIND, or None) and ``until`` (for a
hinted 429, the wall-clock time the answer asked to be left alone until; None for GHCR's
form answering a HEAD, whose body is never sent).

A closed port, the other common fault, needs no process: see ``closed_port``.
"""

from __future__ import annotations

import argparse
import contextlib
import email.utils
import http.client
import itertools
import json
import math
import re
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import attrs

__all__ = [
    "FaultProxy",
    "FaultyRegistry",
    "Limit",
    "LogEntry",
    "closed_port",
    "start_fault_proxy",
    "start_faulty_registry",
]

# Answers that ask the client to come back: the gaps after them are the waits measured.
LIMITED = frozenset({429, 502, 503, 504})
LIMIT_KINDS = ("retry-after", "retry-after-date", "ghcr", "503", "502", "reset-blob", "429-always")


@attrs.frozen
class LogEntry:
    """One request the server answered (or cut off)."""

    method: str
    path: str
    status: int | None
    start: float  # time.time() when it arrived
    end: float  # time.time() when its answer was sent (or the connection reset)
    conn: int  # the client connection that carried it
    fault: str | None = None  # the scripted limit it got, if any
    until: float | None = None  # a hinted 429: the time it asked to be left alone until


def _read_log(log: Path) -> list[LogEntry]:
    if not log.exists():
        return []
    lines = log.read_text(encoding="utf-8").splitlines()
    return [LogEntry(**json.loads(line)) for line in lines if line.strip()]


@attrs.frozen
class FaultyRegistry:
    """A running misbehaving registry."""

    host: str  # 127.0.0.1:PORT
    log: Path

    def requests(self) -> list[str]:
        """Every request answered so far, as "METHOD PATH"."""
        return [f"{e.method} {e.path}" for e in _read_log(self.log)]


@attrs.frozen
class Limit:
    """A scripted limit: the first TIMES requests of each distinct "METHOD PATH" that the
    regular expression MATCHING finds get KIND (see the module's docstring)."""

    matching: str
    times: int
    kind: str

    def __attrs_post_init__(self) -> None:
        if self.kind.split(":")[0] not in LIMIT_KINDS:
            raise ValueError(f"unknown limit kind {self.kind!r}")


class FaultProxy:
    """A running fault-injecting proxy in front of a real registry; stops with `stop()` or
    at the end of a `with` block. Its log outlives it."""

    def __init__(self, process: subprocess.Popen[str], host: str, log: Path) -> None:
        self._process = process
        self.host = host  # 127.0.0.1:PORT
        self.log = log

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        _stop(self._process)

    def entries(self) -> list[LogEntry]:
        """Every request answered so far, in the order answered."""
        return _read_log(self.log)

    def requests(self) -> list[str]:
        """Every request answered so far, as "METHOD PATH"."""
        return [f"{e.method} {e.path}" for e in self.entries()]

    def max_in_flight(self, matching: str = "") -> int:
        """The most requests (whose "METHOD PATH" MATCHING finds) the proxy held at once."""
        found = re.compile(matching)
        edges: list[tuple[float, int]] = []
        for entry in self.entries():
            if found.search(f"{entry.method} {entry.path}"):
                # An end sorts before a start at the same instant: one after the other.
                edges += [(entry.start, 1), (entry.end, -1)]
        most = now = 0
        for _, step in sorted(edges):
            now += step
            most = max(most, now)
        return most

    def waits(self, path: str, method: str | None = None) -> list[float]:
        """For each answer to PATH (and METHOD) that asked the client to come back (a 429,
        502, 503, 504 or a cut connection), the seconds from it to the next request for the
        same path (none after the last)."""
        same = sorted(
            (e for e in self.entries() if e.path == path and method in (None, e.method)),
            key=lambda e: e.start,
        )
        return [
            later.start - entry.end
            for entry, later in itertools.pairwise(same)
            if entry.status in LIMITED or entry.fault is not None
        ]

    def early(self) -> list[tuple[LogEntry, LogEntry]]:
        """Each hinted 429 followed by a request for the same "METHOD PATH" sooner than it
        asked: (the 429, the early request). Empty when every hint was honoured."""
        entries = sorted(self.entries(), key=lambda e: e.start)
        found: list[tuple[LogEntry, LogEntry]] = []
        for index, entry in enumerate(entries):
            if entry.until is None:
                continue
            later = (
                e for e in entries[index + 1 :] if (e.method, e.path) == (entry.method, entry.path)
            )
            following = next(later, None)
            if following is not None and following.start < entry.until:
                found.append((entry, following))
        return found


def start_fault_proxy(
    upstream_host: str,
    tmp: Path | None = None,
    *,
    limits: Sequence[Limit] = (),
    slow: tuple[str, float] | None = None,
) -> FaultProxy:
    """Start a proxy to the plain-HTTP registry UPSTREAM_HOST answering LIMITS as scripted
    (its log in TMP, else in the system's temporary folder); use it in a `with` block or
    call `stop()`."""
    log = Path(tempfile.mkstemp(prefix="fault-proxy-", suffix=".jsonl", dir=tmp)[1])
    args = [sys.executable, str(Path(__file__)), "proxy", "--log", str(log)]
    args += ["--upstream", upstream_host]
    for limit in limits:
        args += ["--limit-matching", limit.matching, "--limit-times", str(limit.times)]
        args += ["--limit-kind", limit.kind]
    if slow is not None:
        args += ["--slow-matching", slow[0], "--slow", str(slow[1])]
    process, port = _launch(args)
    return FaultProxy(process, f"127.0.0.1:{port}", log)


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
    process, port = _launch(args)
    try:
        yield FaultyRegistry(f"127.0.0.1:{port}", log)
    finally:
        _stop(process)


def _launch(args: list[str]) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        args, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, start_new_session=True
    )
    assert process.stdout is not None
    port = process.stdout.readline().strip()
    if not port.isdigit():
        _stop(process)
        raise RuntimeError(f"the faulty registry did not start (exit {process.poll()})")
    return process, port


def _stop(process: subprocess.Popen[str]) -> None:
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

UNAVAILABLE = b'{"errors":[{"code":"UNAVAILABLE","message":"service unavailable"}]}'
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
        self.connections = 0
        self.limited: dict[tuple[int, str], int] = {}  # (rule, request) -> limits answered
        self.rules: list[tuple[re.Pattern[str], int, str]] = [
            (re.compile(m), t, k)
            for m, t, k in zip(
                options.limit_matching, options.limit_times, options.limit_kind, strict=True
            )
        ]

    def record(self, entry: LogEntry) -> None:
        with self.lock, Path(self.options.log).open("a", encoding="utf-8") as log:
            log.write(json.dumps(attrs.asdict(entry)) + "\n")

    def scripted(self, request: str) -> str | None:
        """The limit kind REQUEST gets, if a rule says so (counted)."""
        with self.lock:
            for index, (pattern, times, kind) in enumerate(self.rules):
                if not pattern.search(request):
                    continue
                if kind.startswith("429-always"):
                    return kind
                seen = self.limited.get((index, request), 0)
                if seen < times:
                    self.limited[(index, request)] = seen + 1
                    return kind
        return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.lock:
            self.server.connections += 1
            self.conn = self.server.connections

    def handle(self) -> None:
        if self.server.options.mode == "hang":
            # Accept, then say nothing, for as long as the client waits.
            while True:
                time.sleep(3600)
        super().handle()

    def _log(self, start: float, status: int | None, **extra: Any) -> None:
        entry = LogEntry(self.command, self.path, status, start, time.time(), self.conn, **extra)
        self.server.record(entry)

    def _stall(self, start: float) -> None:
        if self.path == "/v2/":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")
            self._log(start, 200)
            return
        self._log(start, None)  # logged now: it is never answered
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

    def _proxy(self, start: float) -> None:
        options = self.server.options
        body = self._body()
        request = f"{self.command} {self.path}"
        with self.server.lock:
            failing = bool(re.fullmatch(options.fail_matching, request))
            failing = failing and self.server.failed < options.fail_times
            self.server.failed += failing
        if failing:
            self._fail(start, options.status)
            return
        kind = self.server.scripted(request)
        if kind is not None and kind != "reset-blob":
            self._limit(start, kind)
            return
        if re.fullmatch(options.slow_matching, request):
            time.sleep(options.slow)
        status, headers, data = self._forward(body)
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        if kind == "reset-blob" and self.command != "HEAD" and data:
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self._reset()
            self._log(start, status, fault=kind)
            return
        self._finish(start, status, data)

    def _finish(self, start: float, status: int, body: bytes, **extra: Any) -> None:
        """Send the buffered headers and BODY, logging the request just before its last byte
        goes: a client that has its answer finds it in the log, and the time logged is
        never later than the answer's end."""
        payload = b"" if self.command == "HEAD" else body
        if not payload:
            self._log(start, status, **extra)
            self.end_headers()
            return
        self.end_headers()
        self.wfile.write(payload[:-1])
        self._log(start, status, **extra)
        self.wfile.write(payload[-1:])

    def _forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        """Ask the upstream; its status, the headers to send back, and its body."""
        upstream_host = self.server.options.upstream
        # The Host header goes along: the registry's Location headers then name this proxy.
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
        upstream = http.client.HTTPConnection(upstream_host, timeout=120)
        try:
            upstream.request(self.command, self.path, body=body, headers=headers)
            response = upstream.getresponse()
            data = response.read()
        finally:
            upstream.close()
        me = f"127.0.0.1:{self.server.server_address[1]}"
        sent: list[tuple[str, str]] = []
        for key, value in response.getheaders():
            if key.lower() in _HOP | {"content-length"}:
                continue
            named = key.lower() == "location"
            sent.append((key, value.replace(f"//{upstream_host}/", f"//{me}/") if named else value))
        length = response.getheader("Content-Length") if self.command == "HEAD" else len(data)
        if length is not None:
            sent.append(("Content-Length", str(length)))
        return response.status, sent, data

    def _reset(self) -> None:
        """Cut the connection with a TCP reset (SO_LINGER 0), as a failing network does."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    def _limit(self, start: float, kind: str) -> None:
        """Answer a scripted limit of KIND instead of passing the request on."""
        name, _, value = kind.partition(":")
        headers: dict[str, str] = {}
        until = None
        body = UNAVAILABLE
        status = 429
        now = time.time()
        if name == "retry-after" or name == "429-always":
            seconds = value or "1"
            headers["Retry-After"] = seconds
            until = now + float(seconds)
        elif name == "retry-after-date":
            # An HTTP date has whole seconds: rounded up, it asks for at least VALUE.
            until = float(math.ceil(now + float(value)))
            headers["Retry-After"] = email.utils.formatdate(until, usegmt=True)
        elif name == "ghcr":
            message = f"retry-after: {value}ms, allowed: 2000/minute"
            body = json.dumps(
                {"errors": [{"code": "TOOMANYREQUESTS", "message": message}]}
            ).encode()
            # The hint is in the body, which an answer to a HEAD has not: it asks nothing.
            until = now + float(value) / 1000 if self.command != "HEAD" else None
        else:
            status = int(name)
        if status == 429 and name != "ghcr":
            message = "toomanyrequests: too many requests"
            body = json.dumps(
                {"errors": [{"code": "TOOMANYREQUESTS", "message": message}]}
            ).encode()
        self._fail(start, status, body, headers, fault=kind, until=until)

    def _fail(
        self,
        start: float,
        status: int,
        body: bytes = UNAVAILABLE,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self._finish(start, status, body, **extra)

    def _answer(self) -> None:
        start = time.time()
        options = self.server.options
        if options.mode == "stall":
            self._stall(start)
            return
        if options.mode == "proxy":
            self._proxy(start)
            return
        with self.server.lock:
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
        self._fail(start, status)

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
    parser.add_argument("--limit-matching", action="append", default=[])
    parser.add_argument("--limit-times", action="append", type=int, default=[])
    parser.add_argument("--limit-kind", action="append", default=[])
    parser.add_argument("--log", required=True)
    options = parser.parse_args()
    for kind in options.limit_kind:
        Limit("", 0, kind)  # a bad kind stops the proxy before it prints its port
    server = _Server(options)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
