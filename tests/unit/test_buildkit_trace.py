"""BuildKit's progress messages: protobuf wire format read by hand, turned into log lines."""

from __future__ import annotations

import base64

import pytest

from dockerpkg.effects.buildkit import TraceError, TraceLog, decode_trace


# A tiny protobuf encoder, independent of the decoder under test.
def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def field(number: int, value: int | bytes | str) -> bytes:
    if isinstance(value, int):
        return varint(number << 3) + varint(value)
    data = value.encode() if isinstance(value, str) else value
    return varint(number << 3 | 2) + varint(len(data)) + data


def timestamp(seconds: int, nanos: int = 0) -> bytes:
    return field(1, seconds) + (field(2, nanos) if nanos else b"")


def vertex(digest: str, name: str, **more: bytes | int | str) -> bytes:
    numbers = {"cached": 4, "started": 5, "completed": 6, "error": 7}
    body = field(1, digest) + field(2, "sha256:input") + field(3, name)
    for key, value in more.items():
        body += field(numbers[key], value)
    return field(1, body)


def log(digest: str, text: str) -> bytes:
    return field(3, field(1, digest) + field(2, timestamp(5)) + field(3, 1) + field(4, text))


def encoded(*parts: bytes) -> str:
    return base64.b64encode(b"".join(parts)).decode()


class TestDecode:
    def test_vertices_and_logs(self) -> None:
        vertices, logs = decode_trace(
            encoded(
                vertex("sha256:a", "[2/2] RUN make", started=timestamp(10, 500_000_000)),
                field(2, field(1, "status-id")),  # a VertexStatus: not needed, skipped
                log("sha256:a", "compiling\n"),
            )
        )
        (step,) = vertices
        assert (step.digest, step.name, step.started, step.completed) == (
            "sha256:a",
            "[2/2] RUN make",
            10.5,
            None,
        )
        assert [(entry.digest, entry.text) for entry in logs] == [("sha256:a", "compiling\n")]

    def test_unknown_fields_of_every_wire_type_are_skipped(self) -> None:
        fixed64 = varint(9 << 3 | 1) + b"\x00" * 8
        fixed32 = varint(10 << 3 | 5) + b"\x00" * 4
        vertices, _ = decode_trace(encoded(fixed64, fixed32, vertex("sha256:b", "x")))
        assert [v.name for v in vertices] == ["x"]

    @pytest.mark.parametrize(
        "aux",
        [
            "not base64!",
            base64.b64encode(b"\x0a\x05ab").decode(),  # a field longer than the message
            base64.b64encode(b"\x0b").decode(),  # wire type 3 (groups) is not used
            base64.b64encode(b"\x08\xff").decode(),  # a varint that never ends
        ],
    )
    def test_garbage_is_an_error(self, aux: str) -> None:
        with pytest.raises(TraceError):
            decode_trace(aux)


class TestTraceLog:
    def test_steps_numbered_in_order_of_appearance(self) -> None:
        trace = TraceLog()
        lines = trace.lines(
            encoded(
                vertex("sha256:ctx", "[internal] load remote build context", started=timestamp(1)),
                vertex("sha256:run", "[2/2] RUN make"),  # not started: not shown yet
            )
        )
        assert lines == ["#1 [internal] load remote build context\n"]
        lines = trace.lines(
            encoded(
                vertex(
                    "sha256:ctx",
                    "[internal] load remote build context",
                    started=timestamp(1),
                    completed=timestamp(1, 200_000_000),
                ),
                vertex("sha256:run", "[2/2] RUN make", started=timestamp(2)),
                log("sha256:run", "one\ntwo\n"),
            )
        )
        assert lines == [
            "#1 DONE 0.2s\n",
            "#2 [2/2] RUN make\n",
            "#2 one\n",
            "#2 two\n",
        ]
        lines = trace.lines(
            encoded(
                vertex(
                    "sha256:run",
                    "[2/2] RUN make",
                    started=timestamp(2),
                    completed=timestamp(3),
                    error="exit code: 2",
                )
            )
        )
        assert lines == ["#2 ERROR: exit code: 2\n"]
        # A step reported again after its end adds nothing.
        again = vertex("sha256:run", "[2/2] RUN make", started=timestamp(2), completed=timestamp(3))
        assert trace.lines(encoded(again)) == []

    def test_cached_step(self) -> None:
        lines = TraceLog().lines(encoded(vertex("sha256:c", "[1/2] FROM base", cached=1)))
        assert lines == ["#1 [1/2] FROM base\n", "#1 CACHED\n"]
