"""Marks that tell a live test session from a dead one: a file per session in the temporary
folder, held under an exclusive flock for as long as the session lives.

The kernel drops a flock when its holder dies, whatever kills it (SIGKILL included), so a
mark whose lock can be taken belongs to a session that is gone: what it left on the daemon
may be removed. A mark is made under a hidden name and renamed once locked, so no one ever
sees an unlocked mark of a live session. Only this user's folder is read.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import tempfile

import attrs

from dockerpkg.core.testsession import is_session_id
from dockerpkg.errors import DockerPkgError

_SUFFIX = ".live"


def marks_folder(folder: str | None = None) -> str:
    """Where this user's sessions keep their marks: FOLDER (default: a folder of the
    temporary folder, per user), made with mode 0700 when missing."""
    where = folder or os.path.join(tempfile.gettempdir(), f"dockerpkg-sessions-{os.getuid()}")
    os.makedirs(where, mode=0o700, exist_ok=True)
    found = os.lstat(where)
    # In a shared temporary folder, a folder someone else made (or a link) is not ours to
    # trust: its marks could name sessions that never were this user's.
    if not stat.S_ISDIR(found.st_mode) or found.st_uid != os.getuid():
        raise DockerPkgError.single(where, "not a folder of this user's: test sessions need one")
    return where


@attrs.define
class Mark:
    """A session's mark, locked by this process: the session (or, for a dead one, whoever
    found it) holds it while it lives or while it removes what the session left."""

    session_id: str
    path: str
    _descriptor: int | None

    def release(self, *, forget: bool) -> None:
        """Unlock; with FORGET, remove the file first (nothing is left to remove for the
        session: its tags are gone, or kept on purpose). Idempotent."""
        if self._descriptor is None:
            return
        if forget:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        os.close(self._descriptor)
        self._descriptor = None


def take_mark(session_id: str, folder: str) -> Mark:
    """Mark SESSION_ID live in FOLDER (marks_folder) until released."""
    hidden = os.path.join(folder, f".{session_id}.new")
    descriptor = os.open(hidden, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        path = os.path.join(folder, session_id + _SUFFIX)
        os.rename(hidden, path)
    except BaseException:
        os.close(descriptor)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(hidden)
        raise
    return Mark(session_id, path, descriptor)


def dead_marks(folder: str, *, but: str | None = None) -> list[Mark]:
    """The marks in FOLDER of sessions that are gone (other than BUT), each now locked by
    this process: release it (forget=True) once what its session left is removed. A mark
    another process holds (a live session, or one removing a dead one's) is left alone."""
    found = []
    for name in sorted(os.listdir(folder)):
        session_id = name.removesuffix(_SUFFIX)
        if not name.endswith(_SUFFIX) or not is_session_id(session_id) or session_id == but:
            continue
        path = os.path.join(folder, name)
        try:
            descriptor = os.open(path, os.O_RDWR | os.O_NOFOLLOW)
        except OSError:
            continue  # removed meanwhile by another session
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            continue
        if not os.path.exists(path):
            os.close(descriptor)  # forgotten by whoever held it before us
            continue
        found.append(Mark(session_id, path, descriptor))
    return found
