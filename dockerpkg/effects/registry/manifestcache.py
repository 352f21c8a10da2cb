"""Manifests read by digest during one run, kept so that none is asked twice: a digest
names its bytes for ever, so the copy cannot go stale (reads by tag are never kept: tags
move during a run). Bounded in entries and bytes; the oldest go first."""

from __future__ import annotations

import threading
from collections import OrderedDict

MAX_ENTRIES = 4096
MAX_BYTES = 64 * 1024 * 1024


class ManifestCache:
    """(registry host, repository, digest) -> the manifest's bytes and media type (as the
    registry's Content-Type gave it; "" for an image config); safe to share between
    threads."""

    def __init__(self, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES) -> None:
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[str, str, str], tuple[bytes, str]] = OrderedDict()
        self._bytes = 0

    def get(self, host: str, repository: str, digest: str) -> tuple[bytes, str] | None:
        key = (host, repository, digest)
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
            return found

    def put(
        self, host: str, repository: str, digest: str, content: bytes, media_type: str = ""
    ) -> None:
        if len(content) > self._max_bytes:
            return
        key = (host, repository, digest)
        with self._lock:
            if key in self._entries:
                return
            self._entries[key] = (content, media_type)
            self._bytes += len(content)
            while len(self._entries) > self._max_entries or self._bytes > self._max_bytes:
                _, (dropped, _) = self._entries.popitem(last=False)
                self._bytes -= len(dropped)

    def drop(self, host: str, repository: str, digest: str) -> None:
        """Forget a manifest deleted during the run."""
        with self._lock:
            found = self._entries.pop((host, repository, digest), None)
            if found is not None:
                self._bytes -= len(found[0])
