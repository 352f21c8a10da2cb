"""Read the binfmt_misc handlers this machine has registered: which foreign binaries its
kernel hands to an interpreter (QEMU), so that a daemon here can build for other platforms.
core/observing.py decides which platforms they emulate."""

from __future__ import annotations

import platform
from pathlib import Path

from dockerpkg.core.observing import BinfmtHandler

BINFMT_MISC = Path("/proc/sys/fs/binfmt_misc")
# binfmt_misc's own files, beside the handlers.
_CONTROL = frozenset({"register", "status"})


def binfmt_handlers(root: Path = BINFMT_MISC) -> tuple[BinfmtHandler, ...] | None:
    """The handlers registered under ROOT, by name; none when binfmt_misc is disabled as a
    whole; None (not known) when it is not mounted there or cannot be read."""
    try:
        if (root / "status").read_text(encoding="ascii").strip() != "enabled":
            return ()
        names = sorted(entry.name for entry in root.iterdir() if entry.name not in _CONTROL)
    except (OSError, UnicodeDecodeError):
        return None
    found = []
    for name in names:
        try:
            lines = (root / name).read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:  # unregistered meanwhile
            continue
        flags = next(
            (line.partition(":")[2].strip() for line in lines if line.startswith("flags:")), ""
        )
        found.append(BinfmtHandler(name, bool(lines) and lines[0].strip() == "enabled", flags))
    return tuple(found)


def daemon_emulation(
    where: str | None, kernel: str, root: Path = BINFMT_MISC
) -> tuple[tuple[BinfmtHandler, ...] | None, str]:
    """The binfmt_misc handlers a daemon builds under, and why they are not known (None):
    WHERE says why the daemon is not on this machine (None: its socket is here), KERNEL is
    the kernel its `/info` names (another than this machine's: it runs in a virtual machine,
    as Docker Desktop's does, whose binfmt_misc is not the one under ROOT)."""
    if where is not None:
        return None, where
    if kernel and kernel != platform.release():
        return None, f"it runs on another kernel ({kernel}) than this machine's"
    handlers = binfmt_handlers(root)
    if handlers is None:
        return None, f"{root} cannot be read here"
    return handlers, ""
