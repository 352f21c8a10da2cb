"""Read a plan file for `apply`: its size checked before a byte is read (see
dockerpkg.core.planjson for the limits)."""

from __future__ import annotations

import os
import stat

from dockerpkg.core.planjson import MAX_PLAN_BYTES, too_large
from dockerpkg.errors import DockerPkgError


def read_plan_text(path: str) -> str:
    """The text of the plan file at PATH; refused when it is not a regular file, is over the
    size limit or is not UTF-8."""
    try:
        # Looked at before it is opened: opening a FIFO would wait for a writer.
        status = os.stat(path)
        if not stat.S_ISREG(status.st_mode):
            raise DockerPkgError.single(path, "cannot read plan: not a regular file")
        refused = too_large(status.st_size, path)
        if refused is not None:
            raise refused
        with open(path, "rb") as handle:
            # One byte more than the limit: a file that grew meanwhile is refused too.
            data = handle.read(MAX_PLAN_BYTES + 1)
    except OSError as exc:
        raise DockerPkgError.single(path, f"cannot read plan: {exc.strerror or exc}") from None
    refused = too_large(len(data), path)
    if refused is not None:
        raise refused
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DockerPkgError.single(
            path, f"not a dockerpkg plan: not UTF-8 ({exc.reason})"
        ) from None
