"""How the plugin's items and collectors fail: with dockerpkg's own message, no traceback."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from dockerpkg.errors import DockerPkgError


class ItemError(Exception):
    """An item's failure, worded for the user (dockerpkg's file:line messages, a build's
    log tail); shown as it is."""

    def __init__(self, lines: Iterable[str]) -> None:
        super().__init__("\n".join(lines))


def worded(excinfo: pytest.ExceptionInfo[BaseException]) -> str | None:
    """The message of an expected failure (ours, or bad input dockerpkg reports), else None:
    anything else is a bug, and pytest shows its traceback."""
    if isinstance(excinfo.value, ItemError | DockerPkgError):
        return str(excinfo.value)
    return None
