"""One writing run at a time per repository: a lock on the folder of the repository holding
the tree (the same root links are followed within), shared locks on the folders above it.

Runs that write changelogs, push or remove images (apply, build, update, prune) hold it from
before they read the tree until they end, so two of them never interleave; `plan` needs none.

The lock is ``flock`` on the folder's own file descriptor rather than on a lock file: nothing
is written into the user's tree, any path naming the same folder (a symlink, ``.``) finds the
same lock, any user who can read the tree takes part, and the kernel releases it when the
process ends, however it ends (Ctrl-C, a crash, SIGKILL): there is no stale lock to clean up.
It is advisory and local: it does not reach runs on other machines sharing the tree over NFS.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator

from dockerpkg.effects.links import repository_root
from dockerpkg.errors import DockerPkgError

__all__ = ["LOCKS_FILE", "lock_holder", "tree_lock"]

#: Where Linux lists the locks held, with the pid that took each one.
LOCKS_FILE = "/proc/locks"

# Called with the holder's pid (None when unknown) before waiting for the lock.
OnWait = Callable[[int | None], None]


@contextlib.contextmanager
def tree_lock(directory: str, *, wait: bool, on_wait: OnWait | None = None) -> Iterator[None]:
    """Hold the lock of DIRECTORY's repository (see `repository_root`) for the ``with`` block:
    exclusive on the repository's folder, shared on each folder above it. A run on a folder
    and one on a folder inside it (two repositories' worth of nesting, or none) thus exclude
    each other, and runs on folders side by side do not.

    When another process holds it: raise DockerPkgError naming that process, or, with WAIT,
    call ON_WAIT and block until it is released. A DIRECTORY that cannot be opened is not
    locked: reading the tree reports that problem in its own words. Locks are taken from the
    top down, so waiting runs never wait for each other in a circle.
    """
    root = repository_root(directory)
    held: list[int] = []
    try:
        for folder in _above(root):
            with contextlib.suppress(OSError):  # a folder above we may not read: left out
                held.append(_open(folder))
                _take(held[-1], fcntl.LOCK_SH, directory, folder, wait=wait, on_wait=on_wait)
        try:
            descriptor: int | None = _open(root)
        except OSError:
            descriptor = None
        if descriptor is None:
            yield
            return
        held.append(descriptor)
        _take(held[-1], fcntl.LOCK_EX, directory, root, wait=wait, on_wait=on_wait)
        yield
    finally:
        for descriptor in reversed(held):
            os.close(descriptor)  # releases its lock


def _open(folder: str) -> int:
    return os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def _above(folder: str) -> list[str]:
    """The folders above FOLDER, from the top down."""
    found = []
    current = os.path.dirname(folder)
    while current != folder:
        found.append(current)
        folder, current = current, os.path.dirname(current)
    return found[::-1]


def _take(
    descriptor: int, kind: int, directory: str, folder: str, *, wait: bool, on_wait: OnWait | None
) -> None:
    try:
        fcntl.flock(descriptor, kind | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = lock_holder(descriptor)
        if not wait:
            if kind != fcntl.LOCK_EX:
                where = f"{folder}, which holds this tree"
            elif folder != os.path.realpath(directory):
                where = f"{folder}, the repository holding this tree"
            else:
                where = "this tree"
            raise DockerPkgError.single(
                directory,
                f"another dockerpkg run{_pid(holder)} holds the lock on {where}; "
                "wait for it to finish, or use --wait-lock",
            ) from None
        if on_wait is not None:
            on_wait(holder)
        fcntl.flock(descriptor, kind)


def _pid(holder: int | None) -> str:
    return "" if holder is None else f" (pid {holder})"


def lock_holder(descriptor: int, locks_file: str = LOCKS_FILE) -> int | None:
    """The pid holding a flock on the file open as DESCRIPTOR, when the system says.

    Lines of /proc/locks read ``1: FLOCK  ADVISORY  WRITE 4242 fe:00:2664127 0 EOF`` (the
    device as hex major:minor, then the inode); waiters are marked ``->`` and left out.
    """
    info = os.fstat(descriptor)
    key = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    try:
        with open(locks_file, encoding="ascii", errors="replace") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == key:
            with contextlib.suppress(ValueError):
                pid = int(fields[4])
                return pid if pid > 0 else None
    return None
