"""Capped step logs: the first and last halves of the limit, a marker for what is left out."""

from __future__ import annotations

import io
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockerpkg.effects.logs import CappedLog

MARKER = re.compile(
    r"\n\[dockerpkg: (\d+) characters of output left out here; each step's log keeps its "
    r"first \d+ and last \d+\]\n"
)


def capped(chunks: list[str], limit: int) -> str:
    target = io.StringIO()
    log = CappedLog(target, limit)
    for chunk in chunks:
        assert log.write(chunk) == len(chunk)
    log.close()
    log.close()  # a second close adds nothing
    return target.getvalue()


class TestCappedLog:
    """What reaches the file: everything under the limit, else its start and end."""

    def test_short_output_passes_whole(self) -> None:
        assert capped(["Step 1/2\n", "ok\n"], 100) == "Step 1/2\nok\n"

    def test_long_output_keeps_start_and_end(self) -> None:
        text = "".join(f"line {n}\n" for n in range(10_000))
        result = capped([text[i : i + 333] for i in range(0, len(text), 333)], 1000)
        head, dropped, tail = MARKER.split(result)
        assert head == text[:500]
        assert tail == text[-500:]
        assert int(dropped) == len(text) - 1000

    def test_memory_is_bounded_by_the_tail(self) -> None:
        target = io.StringIO()
        log = CappedLog(target, 1000)
        for _ in range(10_000):
            log.write("y\n" * 50)
        # Nothing beyond the head has reached the file yet; the tail in memory is small.
        assert len(target.getvalue()) == 500
        assert log.dropped == 10_000 * 100 - 1000
        log.close()
        assert len(MARKER.sub("", target.getvalue())) == 1000

    def test_limit_must_leave_room(self) -> None:
        with pytest.raises(ValueError, match="at least 2"):
            CappedLog(io.StringIO(), 1)

    @given(st.lists(st.text(max_size=40), max_size=30), st.integers(min_value=2, max_value=200))
    def test_any_writes(self, chunks: list[str], limit: int) -> None:
        text = "".join(chunks)
        result = capped(chunks, limit)
        if len(text) <= limit:
            assert result == text
        else:
            head, tail = limit // 2, limit - limit // 2
            assert result == (
                text[:head]
                + f"\n[dockerpkg: {len(text) - limit} characters of output left out here; "
                f"each step's log keeps its first {head} and last {tail}]\n"
                + text[len(text) - tail :]
            )


def test_tiny_writes_are_kept_in_few_pieces() -> None:
    """A build printing `yes` arrives two characters at a time: the kept tail must not be
    millions of string objects (twenty times the memory of their characters)."""
    target = io.StringIO()
    log = CappedLog(target, limit=2_000_000)
    for _ in range(2_000_000):
        log.write("y\n")
    # What it holds: pieces of 64 KiB, and the newest writes not yet joined into one.
    assert len(log._tail) < 100
    assert len(log._pending) <= 65_536 // 2
    log.close()
    text = target.getvalue()
    assert text.startswith("y\n" * 10)
    assert text.endswith("y\n" * 10)
    assert log.dropped == 2_000_000
    head, marker, tail = text.partition("\n[dockerpkg: ")
    assert marker
    assert len(head) == 1_000_000
    assert len(tail.split("]\n", 1)[1]) == 1_000_000
