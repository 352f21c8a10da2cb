"""The supervisor a verification command runs under: `python -I -S subreaper.py GRACE --
COMMAND...` (run by path, standard library only, so it starts in a few milliseconds).

It makes itself a child subreaper (Linux's prctl PR_SET_CHILD_SUBREAPER), so whatever the
command starts stays its descendant even once orphaned, a `setsid` or a double fork included:
leaving the process group does not leave the tree. When the command ends, every descendant
left is killed; on SIGTERM every descendant gets SIGTERM, then SIGKILL GRACE seconds later.
Its exit status is the command's (a command ended by a signal ends it by the same signal).

Why not a process group, a cgroup or a marked environment: a group is left by `setsid`, an
environment variable can be dropped, and cgroups are rarely delegated to an unprivileged
process; the process tree is the one thing a child cannot leave.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence

_PR_SET_CHILD_SUBREAPER = 36
# How long killing what is left may take (a process in uninterruptible sleep may not die).
_KILL_LIMIT = 5.0
_PAUSE = 0.02


class _Stop(Exception):  # noqa: N818 (a signal, not an error)
    pass


def _stop(signum: int, frame: object) -> None:
    raise _Stop


def descendants(root: int) -> set[int]:
    """Every process below ROOT, from /proc (zombies included)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue  # ended meanwhile
        # After the command name (in parentheses, which may hold anything): state, ppid.
        parent = int(stat.rsplit(b")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry))
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _reap() -> None:
    """Collect every child that has ended (orphans come to us, and must not stay zombies)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _signal_all(pids: set[int], signum: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except (ProcessLookupError, PermissionError):
            continue


def kill_all(limit: float = _KILL_LIMIT) -> None:
    """SIGKILL to every descendant, again until none is left (a process forking while it is
    killed leaves children that come to us), for LIMIT seconds at most."""
    me = os.getpid()
    deadline = time.monotonic() + limit
    while (left := descendants(me)) and time.monotonic() < deadline:
        _signal_all(left, signal.SIGKILL)
        _reap()
        time.sleep(_PAUSE)
    _reap()


def _terminate(grace: float) -> None:
    """SIGTERM to every descendant, GRACE seconds for them to end, then SIGKILL."""
    me = os.getpid()
    _signal_all(descendants(me), signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        _reap()
        if not descendants(me):
            return
        time.sleep(_PAUSE)
    kill_all()


def _end_as(status: int) -> None:
    """Exit with STATUS as waitpid gave it: the same code, or the same signal."""
    code = os.waitstatus_to_exitcode(status)
    if code >= 0:
        sys.exit(code)
    if -code not in (signal.SIGKILL, signal.SIGSTOP):  # they have no handler to reset
        signal.signal(-code, signal.SIG_DFL)
    os.kill(os.getpid(), -code)
    sys.exit(128 - code)  # a signal that does not end a process (not one a command dies of)


def main(argv: Sequence[str], env: Mapping[str, str]) -> None:
    """Run the command of ARGV (`GRACE -- COMMAND [ARG...]`) with ENV, this supervisor's
    own environment as its parent gave it."""
    grace, separator, *command = argv
    if separator != "--" or not command:
        sys.exit("usage: subreaper.py GRACE -- COMMAND [ARG...]")
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        print("dockerpkg: no child subreaper here: orphans may survive", file=sys.stderr)
    signal.signal(signal.SIGTERM, _stop)
    try:
        try:
            # posix_spawn rather than subprocess: an import fewer, a faster start.
            child = os.posix_spawnp(command[0], command, env)
        except OSError as exc:
            print(f"{command[0]}: cannot run: {exc.strerror}", file=sys.stderr)
            sys.exit(127 if isinstance(exc, FileNotFoundError) else 126)
        while True:
            pid, status = os.wait()  # orphans that end are collected here too
            if pid == child:
                break
    except _Stop:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        _terminate(float(grace))
        sys.exit(128 + signal.SIGTERM)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # what is left is being killed already
    kill_all()
    _end_as(status)


if __name__ == "__main__":
    # A program of its own: its environment is what verify.py gave it, read here once.
    main(sys.argv[1:], os.environ)
