"""Step logs of bounded size: a build that prints gigabytes must not fill the disk or memory.

A capped log passes the first half of its limit straight to the file, keeps only the latest
second half of the rest in memory, and when it is closed writes a line saying how much was left
out, then that last part: the start (what ran) and the end (how it failed) are what a reader
needs.
"""

from __future__ import annotations

import collections
from typing import IO

from dockerpkg.core.applyoptions import DEFAULT_LOG_LIMIT

__all__ = ["DEFAULT_LOG_LIMIT", "CappedLog"]


# Characters of small writes gathered before they are joined into one piece of the tail.
_PIECE = 65536


class CappedLog:
    """Writes at most LIMIT characters of what it is given to TARGET (plus one marker line).

    Memory use is bounded by half the limit plus one write (small writes are joined into
    pieces, so their count stays small). `close` writes the kept end; it does not close
    TARGET.
    """

    def __init__(self, target: IO[str], limit: int = DEFAULT_LOG_LIMIT) -> None:
        if limit < 2:
            msg = f"a log limit must be at least 2 characters, not {limit}"
            raise ValueError(msg)
        self._target = target
        self._limit = limit
        self._head_left = limit // 2
        self._tail_size = limit - limit // 2
        self._tail: collections.deque[str] = collections.deque()
        self._tail_length = 0  # what the tail holds, gathered or not
        self._pending: list[str] = []  # the newest small writes, not yet one piece
        self._pending_length = 0
        self._dropped = 0
        self._closed = False

    @property
    def dropped(self) -> int:
        """Characters left out so far (final once closed)."""
        return self._dropped + max(0, self._tail_length - self._tail_size)

    def write(self, text: str) -> int:
        written = len(text)
        if self._head_left > 0:
            head = text[: self._head_left]
            self._target.write(head)
            self._head_left -= len(head)
            text = text[len(head) :]
        if text:
            # Small writes are gathered and joined into one piece: millions of two-byte
            # strings would cost twenty times their characters in object headers.
            self._pending.append(text)
            self._pending_length += len(text)
            self._tail_length += len(text)
            if self._pending_length >= _PIECE:
                self._gather()
            # Drop whole old pieces while what remains still covers the tail.
            while self._tail and self._tail_length - len(self._tail[0]) >= self._tail_size:
                old = self._tail.popleft()
                self._tail_length -= len(old)
                self._dropped += len(old)
        return written

    def _gather(self) -> None:
        if self._pending:
            self._tail.append("".join(self._pending))
            self._pending.clear()
            self._pending_length = 0

    def close(self) -> None:
        """Write the marker (if anything was left out) and the kept end."""
        if self._closed:
            return
        self._closed = True
        self._gather()
        excess = self._tail_length - self._tail_size
        if excess > 0:
            self._tail[0] = self._tail[0][excess:]
            self._tail_length -= excess
            self._dropped += excess
        if self._dropped:
            self._target.write(
                f"\n[dockerpkg: {self._dropped} characters of output left out here; each step's "
                f"log keeps its first {self._limit // 2} and last {self._tail_size}]\n"
            )
        self._target.writelines(self._tail)
        self._tail.clear()
        self._tail_length = 0
        self._target.flush()

    def flush(self) -> None:
        self._target.flush()

    def fileno(self) -> int:
        """The file's descriptor, for a child process to write to it (not capped)."""
        return self._target.fileno()


class Tee:
    """Writes to the log file and, prefixed with the image name, to the terminal."""

    def __init__(self, log: CappedLog, echo: IO[str], name: str) -> None:
        self._log, self._echo, self._name = log, echo, name

    def write(self, text: str) -> int:
        self._log.write(text)
        for line in text.splitlines():
            self._echo.write(f"{self._name} | {line}\n")
        return len(text)

    def flush(self) -> None:
        self._log.flush()

    def fileno(self) -> int:
        return self._log.fileno()
