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


def end_session(leader: int) -> None:
    """Kill what a failed test left: the group of LEADER (it called setsid)."""
    if not gone(leader):
        os.killpg(leader, 9)


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


def test_what_left_the_session_is_ended_too(tmp_path: Path) -> None:
    """A `setsid` child leaves the command's process group and session; it is still below the
    supervisor, which ends it with the command."""
    pidfile = tmp_path / "pid"
    # The child writes its pid once it is in a session of its own; test.sh waits for that.
    child = f"echo $$ > {pidfile}.new && mv {pidfile}.new {pidfile} && exec sleep 1000"
    script = (
        f"setsid sh -c '{child}' >/dev/null 2>&1 < /dev/null &\n"
        f"while [ ! -e {pidfile} ]; do sleep 0.05; done; echo done"
    )
    test_sh = tmp_path / "test.sh"
    test_sh.write_text(f"#!/bin/sh\n{script}\n", encoding="utf-8")
    test_sh.chmod(0o755)
    log = io.StringIO()
    finished = run_verification([str(test_sh)], ENV, log, cancel=threading.Event())
    assert finished.returncode == 0
    assert log.getvalue() == "done\n"
    pid = int(pidfile.read_text(encoding="utf-8"))
    try:
        assert gone(pid), Path(f"/proc/{pid}/cmdline").read_bytes()
    finally:
        end_session(pid)


def test_a_cancel_ends_what_left_the_session(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    child = f'trap "" TERM; echo $$ > {pidfile}.new && mv {pidfile}.new {pidfile}; sleep 1000'
    script = f"setsid sh -c '{child}' & sleep 1000"
    cancel = threading.Event()
    threading.Timer(0.5, cancel.set).start()
    began = time.monotonic()
    finished = run_verification(["sh", "-c", script], ENV, io.StringIO(), cancel=cancel)
    assert finished.cancelled
    pid = int(pidfile.read_text(encoding="utf-8"))
    try:
        # It ignored SIGTERM: SIGKILL after the grace period ended it.
        assert gone(pid)
        assert time.monotonic() - began < GRACE + 3
    finally:
        end_session(pid)


def test_exit_status_and_signals_come_through(tmp_path: Path) -> None:
    run = threading.Event()
    assert run_verification(["sh", "-c", "exit 3"], ENV, io.StringIO(), cancel=run).returncode == 3
    killed = run_verification(["sh", "-c", "kill -9 $$"], ENV, io.StringIO(), cancel=run)
    assert killed.returncode == -9
    missing = io.StringIO()
    absent = run_verification([str(tmp_path / "nope")], ENV, missing, cancel=run)
    assert absent.returncode == 127
    assert "nope: cannot run: No such file or directory" in missing.getvalue()
