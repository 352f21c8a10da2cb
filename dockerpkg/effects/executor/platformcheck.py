"""Several platforms: an image built or pulled for one platform is checked to be of it.

A classic build for `linux/arm64` whose FROM names a tag the daemon holds for another
platform silently gives an image of that other platform; a pull of a single-platform
manifest may give one too. The daemon's own record of the image (its config's OS,
architecture and variant) is what is checked, not what was asked.
"""

from __future__ import annotations

from typing import IO

from dockerpkg.core.platforms import Platform
from dockerpkg.effects.executor.shared import Shared
from dockerpkg.effects.tasks import TaskFailedError
from dockerpkg.effects.waits import DaemonError


def require_platform(
    run: Shared, label: str, wanted: str, done: tuple[str, str], log: IO[str]
) -> None:
    """Fail unless the local image LABEL is of platform WANTED; DONE: what made it
    ("built", "pulled") and what may explain a mismatch, for the message."""
    try:
        found = run.daemon.image_platform(label)
    except DaemonError as exc:
        raise run.failed(exc) from None
    if Platform.parse(found) == Platform.parse(wanted):
        log.write(f"{label}: {found}, as asked\n")
        return
    verb, why = done
    message = f"{verb} a {found} image for {wanted}: {label} ({why})"
    log.write(message + "\n")
    raise TaskFailedError(message)


BUILT = ("built", "a parent or base held locally for another platform?")
PULLED = ("pulled", "the registry holds no image of that platform under it?")
LOCAL_COPY = ("found", "the daemon's own copy, taken as the pull failed")
