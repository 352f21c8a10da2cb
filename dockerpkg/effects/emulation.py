"""Read the binfmt_misc handlers this machine has registered: which foreign binaries its
kernel hands to an interpreter (QEMU), so that a daemon here can build for other platforms.
core/observing.py decides which platforms they emulate."""

from __future__ import annotations

from pathlib import Path

from dockerpkg.core.observing import BinfmtHandler

BINFMT_MISC = Path("/proc/sys/fs/binfmt_misc")
# binfmt_misc's own files, beside the handlers.
_CONTROL = frozenset({"register", "status"})


def binfmt_handlers(root: Path = BINFMT_MISC) -> tuple[BinfmtHandler, ...]:
    """The handlers registered under ROOT, by name; none when binfmt_misc is not mounted
    there, is disabled as a whole, or cannot be read."""
    try:
        if (root / "status").read_text(encoding="ascii").strip() != "enabled":
            return ()
        names = sorted(entry.name for entry in root.iterdir() if entry.name not in _CONTROL)
    except (OSError, UnicodeDecodeError):
        return ()
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
