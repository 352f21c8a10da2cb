"""Reading BuildKit's build stream: its progress arrives as base64 protobuf in JSON messages.

The daemon's `POST /build?version=2` answers with JSON lines like the classic engine's, but
a step's progress and output come as `{"id": "moby.buildkit.trace", "aux": BASE64}`, each an
encoded `StatusResponse` of BuildKit's control API, and the built image's ID as
`{"id": "moby.image.id", "aux": {"ID": ...}}`. Only the few fields a build log needs are
decoded (vertex names and times, and their output), by hand: the wire format is small and a
protobuf runtime would be a dependency for five fields.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator

import attrs

TRACE_ID = "moby.buildkit.trace"
IMAGE_ID = "moby.image.id"

# Field numbers of BuildKit's control.proto (StatusResponse, Vertex, VertexLog, Timestamp).
_RESPONSE_VERTEX, _RESPONSE_LOG = 1, 3
_VERTEX_DIGEST, _VERTEX_NAME, _VERTEX_CACHED = 1, 3, 4
_VERTEX_STARTED, _VERTEX_COMPLETED, _VERTEX_ERROR = 5, 6, 7
_LOG_VERTEX, _LOG_MESSAGE = 1, 4
_SECONDS, _NANOS = 1, 2

_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5


class TraceError(ValueError):
    """A trace message that is not the protobuf it should be."""


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data):
            raise TraceError("truncated varint")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7


def _fields(data: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) pairs of one message: ints for varints, bytes otherwise."""
    at = 0
    while at < len(data):
        key, at = _varint(data, at)
        number, kind = key >> 3, key & 7
        value: int | bytes
        if kind == _VARINT:
            value, at = _varint(data, at)
        elif kind == _LENGTH:
            size, at = _varint(data, at)
            value, at = data[at : at + size], at + size
            if len(value) != size:
                raise TraceError("truncated field")
        elif kind == _FIXED64:
            value, at = data[at : at + 8], at + 8
        elif kind == _FIXED32:
            value, at = data[at : at + 4], at + 4
        else:
            raise TraceError(f"unknown wire type {kind}")
        yield number, value


def _seconds(data: bytes) -> float:
    seconds = nanos = 0
    for number, value in _fields(data):
        if isinstance(value, int):
            if number == _SECONDS:
                seconds = value
            elif number == _NANOS:
                nanos = value
    return seconds + nanos / 1e9


@attrs.frozen
class Vertex:
    """One step of the build graph as last reported."""

    digest: str
    name: str = ""
    cached: bool = False
    started: float | None = None
    completed: float | None = None
    error: str = ""


@attrs.frozen
class VertexLog:
    digest: str
    text: str


def _vertex(data: bytes) -> Vertex:
    found: dict[str, object] = {}
    for number, value in _fields(data):
        if number == _VERTEX_DIGEST and isinstance(value, bytes):
            found["digest"] = value.decode("utf-8", "replace")
        elif number == _VERTEX_NAME and isinstance(value, bytes):
            found["name"] = value.decode("utf-8", "replace")
        elif number == _VERTEX_CACHED and isinstance(value, int):
            found["cached"] = bool(value)
        elif number == _VERTEX_STARTED and isinstance(value, bytes):
            found["started"] = _seconds(value)
        elif number == _VERTEX_COMPLETED and isinstance(value, bytes):
            found["completed"] = _seconds(value)
        elif number == _VERTEX_ERROR and isinstance(value, bytes):
            found["error"] = value.decode("utf-8", "replace")
    return Vertex(**found)  # type: ignore[arg-type]


def _log(data: bytes) -> VertexLog:
    digest, text = "", ""
    for number, value in _fields(data):
        if number == _LOG_VERTEX and isinstance(value, bytes):
            digest = value.decode("utf-8", "replace")
        elif number == _LOG_MESSAGE and isinstance(value, bytes):
            text = value.decode("utf-8", "replace")
    return VertexLog(digest, text)


def decode_trace(encoded: str) -> tuple[tuple[Vertex, ...], tuple[VertexLog, ...]]:
    """The vertices and output lines of one trace message's base64 `aux`."""
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise TraceError(f"not base64: {exc}") from None
    vertices: list[Vertex] = []
    logs: list[VertexLog] = []
    for number, value in _fields(data):
        if number == _RESPONSE_VERTEX and isinstance(value, bytes):
            vertices.append(_vertex(value))
        elif number == _RESPONSE_LOG and isinstance(value, bytes):
            logs.append(_log(value))
    return tuple(vertices), tuple(logs)


class TraceLog:
    """Turns one build's trace messages into log lines, as `docker buildx --progress plain`
    prints them: `#N name` when step N starts, `#N output`, `#N DONE 0.5s` (or CACHED, ERROR).

    One per build; it numbers the steps in the order they appear.
    """

    def __init__(self) -> None:
        self._numbers: dict[str, int] = {}
        self._said: dict[str, set[str]] = {}

    def lines(self, encoded: str) -> list[str]:
        vertices, logs = decode_trace(encoded)
        out: list[str] = []
        for vertex in vertices:
            number = self._number(vertex.digest)
            said = self._said.setdefault(vertex.digest, set())
            if vertex.name and "name" not in said and (vertex.started or vertex.cached):
                said.add("name")
                out.append(f"#{number} {vertex.name}\n")
            if "end" in said:
                continue
            if vertex.error:
                said.add("end")
                out.append(f"#{number} ERROR: {vertex.error}\n")
            elif vertex.cached:
                said.add("end")
                out.append(f"#{number} CACHED\n")
            elif vertex.completed is not None:
                said.add("end")
                took = vertex.completed - (vertex.started or vertex.completed)
                out.append(f"#{number} DONE {took:.1f}s\n")
        for entry in logs:
            number = self._number(entry.digest)
            out.extend(f"#{number} {line}\n" for line in entry.text.splitlines() if line)
        return out

    def _number(self, digest: str) -> int:
        return self._numbers.setdefault(digest, len(self._numbers) + 1)
