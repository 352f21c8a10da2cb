"""Temporary folders of a run (build contexts, build stage outputs, TLS, session, SSH agent
and tunnel folders), named so that a later run can tell whose they are and remove those a
killed run left.

A folder is `dockerpkg.PID.START.KIND.RANDOM` in the temporary folder: PID and START (its
start time in clock ticks since boot, /proc/PID/stat's 22nd field) name the process that made
it. A run removes it whatever happens, short of SIGKILL or a crash; then the next building
run removes each such folder whose owner is gone: no process PID, or one started at another
time (the pid was used again). Only folders of this name, of this user, that are folders (not
links) are touched, and nothing when /proc cannot tell.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import stat
import tempfile

log = logging.getLogger(__name__)

_NAME = re.compile(r"dockerpkg\.(?P<pid>[0-9]+)\.(?P<start>[0-9]+)\.")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def start_time(pid: int) -> int | None:
    """When PID started (clock ticks since boot); None when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read()
    except OSError:
        return None
    # After the command's name (in parentheses, and holding anything): fields 3 on.
    return int(fields.rsplit(b")", 1)[1].split()[19])


def owner_prefix(kind: str, pid: int | None = None) -> str:
    """The name's start for a folder of KIND made by PID (default: this process)."""
    pid = os.getpid() if pid is None else pid
    return f"dockerpkg.{pid}.{start_time(pid) or 0}.{_UNSAFE.sub('-', kind)}."


def make_folder(kind: str) -> str:
    """A new folder of KIND (a word: `context`, `stage`, `certs` ...), mode 0700, marked as
    this process's."""
    return tempfile.mkdtemp(prefix=owner_prefix(kind))


def remove_abandoned(folder: str | None = None) -> list[str]:
    """Remove the folders in FOLDER (default: the temporary folder) that runs which are gone
    left; returns their paths."""
    folder = folder or tempfile.gettempdir()
    if start_time(os.getpid()) is None:
        return []  # no /proc: an owner's life cannot be told
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    removed = []
    for name in names:
        found = _NAME.match(name)
        if found is None:
            continue
        path = os.path.join(folder, name)
        if not _ours(path) or start_time(int(found["pid"])) == int(found["start"]):
            continue  # another user's, not a folder, or its owner still runs
        shutil.rmtree(path, ignore_errors=True)
        log.debug("removed %s, left by a run that ended without removing it", path)
        removed.append(path)
    return removed


def _ours(path: str) -> bool:
    try:
        found = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(found.st_mode) and found.st_uid == os.getuid()
