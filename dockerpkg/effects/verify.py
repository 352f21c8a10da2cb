"""Run one verification command (an image's test.sh, by default) within bounds.

The command runs under a small supervisor (dockerpkg/effects/subreaper.py), a child
subreaper in a session of its own: whatever the command starts (a `sleep`, a server in the
background, one that called `setsid` or forked twice) stays below the supervisor. A cancel or
a time limit ends them all (SIGTERM, then SIGKILL GRACE seconds later), and so does the
command's own end: what it left running would otherwise outlive the run. Its output comes
through a pipe into the step's log, so the log's cap holds for it as for a build.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from typing import IO

import attrs

# After SIGTERM, how long the command and what it started have before SIGKILL.
GRACE = 5.0
# The supervisor SIGKILLs what is left after GRACE; after this, the whole group goes too (in
# case the supervisor itself is stuck).
_LAST_RESORT = GRACE + 2.0
_SUPERVISOR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "subreaper.py")
# After the command ends, how long what it left may keep the pipe open before it is cut.
DRAIN = 5.0
_POLL = 0.1


@attrs.frozen
class Finished:
    """How a verification ended: its exit status, or why it was stopped."""

    returncode: int | None
    timed_out: bool = False
    cancelled: bool = False


def run_verification(
    argv: Sequence[str],
    env: Mapping[str, str],
    log: IO[str],
    *,
    cancel: threading.Event,
    timeout: float | None = None,
) -> Finished:
    """Run ARGV with ENV, its output (stdout and stderr) written to LOG as it comes."""
    deadline = None if timeout is None else time.monotonic() + timeout
    process = subprocess.Popen(
        # -I -S: the supervisor reads no PYTHON* variable and no site packages.
        [sys.executable, "-I", "-S", _SUPERVISOR, str(GRACE), "--", *argv],
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    assert process.stdout is not None
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    stopped: str | None = None
    drain_until: float | None = None
    closed = False  # the pipe's end: whatever holds it closed it, the command may go on
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while True:
            if stopped is None and cancel.is_set():
                stopped = "cancelled"
                end_group(process)
            elif stopped is None and deadline is not None and time.monotonic() >= deadline:
                stopped = "timed out"
                end_group(process)
            if drain_until is None and process.poll() is not None:
                # What the command left behind goes with it.
                kill_group(process)
                drain_until = time.monotonic() + DRAIN
            if drain_until is not None and (closed or time.monotonic() >= drain_until):
                break
            if closed:
                time.sleep(_POLL)  # only the command's end, the cancel or the time limit now
                continue
            if not selector.select(_POLL):
                continue
            chunk = os.read(process.stdout.fileno(), 65536)
            if not chunk:
                closed = True
                selector.unregister(process.stdout)
                continue
            log.write(decoder.decode(chunk))
    log.write(decoder.decode(b"", final=True))
    process.stdout.close()
    returncode = process.wait()
    return Finished(
        None if stopped else returncode,
        timed_out=stopped == "timed out",
        cancelled=stopped == "cancelled",
    )


def end_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to PROCESS's group (the supervisor passes it on to every descendant, and
    SIGKILLs them GRACE seconds later); SIGKILL to the group a little later, from a thread,
    if anything of it is still there."""
    _signal_group(process, signal.SIGTERM)

    def later() -> None:
        time.sleep(_LAST_RESORT)
        if process.returncode is None:  # else its end killed the group already
            kill_group(process)

    threading.Thread(target=later, name="dockerpkg-verify-kill", daemon=True).start()


def kill_group(process: subprocess.Popen[bytes]) -> None:
    _signal_group(process, signal.SIGKILL)


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    # The group's id is the command's pid (a session of its own); it may be gone already.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)
