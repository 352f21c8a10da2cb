"""dockerpkg run as a process of its own, to be killed in the middle of a write: the
recovery tests of `update` and `update --refs`."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def environment() -> dict[str, str]:
    """This checkout importable, and a changelog author named."""
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DEBFULLNAME": "Recovery Tester",
        "DEBEMAIL": "recovery@example.org",
    }


def dockerpkg(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`dockerpkg ARGV` in CWD, run to its end."""
    return subprocess.run(
        [sys.executable, "-m", "dockerpkg", *argv],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=environment(),
        timeout=120,
        check=False,
    )


def start_writing(
    argv: tuple[str, ...], work: Path, journal: Path
) -> tuple[subprocess.Popen[bytes], float]:
    """`dockerpkg ARGV` started in WORK; returns once JOURNAL is there (or it ended), with
    when."""
    process = subprocess.Popen(
        [sys.executable, "-m", "dockerpkg", *argv],
        cwd=work,
        env=environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not journal.exists() and process.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.001)
    return process, time.monotonic()
