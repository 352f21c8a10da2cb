"""A verification's bounds hold whatever the command does with its output: one that closes
it and goes on is still timed out or cancelled, and what it leaves running goes with it."""

from __future__ import annotations

import io
import os
import threading
import time
from pathlib import Path

from dockerpkg.effects.verify import GRACE, run_verification

ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}


def gone(pid: int) -> bool:
    """Whether PID has ended (a zombie waiting for its parent counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8").rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


def test_closed_output_does_not_escape_the_time_limit() -> None:
    log = io.StringIO()
    began = time.monotonic()
    finished = run_verification(
        ["sh", "-c", "echo started; exec >/dev/null 2>&1; sleep 60"],
        ENV,
        log,
        cancel=threading.Event(),
        timeout=1,
    )
    assert finished.timed_out
    assert finished.returncode is None
    assert "started" in log.getvalue()
    assert time.monotonic() - began < 1 + GRACE + 3


def test_closed_output_does_not_escape_a_cancel() -> None:
    cancel = threading.Event()
    threading.Timer(0.5, cancel.set).start()
    finished = run_verification(
        ["sh", "-c", "exec >/dev/null 2>&1; sleep 60"], ENV, io.StringIO(), cancel=cancel
    )
    assert finished.cancelled


def test_what_a_finished_command_left_running_is_ended(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    script = f"sleep 60 >/dev/null 2>&1 & echo $! > {pidfile}; echo done"
    finished = run_verification(["sh", "-c", script], ENV, io.StringIO(), cancel=threading.Event())
    assert finished.returncode == 0
    pid = int(pidfile.read_text(encoding="utf-8"))
    deadline = time.monotonic() + 5
    while not gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone(pid)
