"""Watching what runs: a dockerpkg process's output, and build steps (the classic builder runs a
step in a container, BuildKit with runc outside the daemon's container list: both are looked
for)."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
from pathlib import Path

import docker


def step_processes(marker: str) -> list[int]:
    """PIDs of this machine's processes whose command line holds MARKER."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if marker.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
    return found


def build_steps(client: docker.DockerClient, marker: str) -> list[str]:
    """What runs or is left of a build step whose command holds MARKER: containers by ID,
    then processes as `pid N`."""
    containers = [c["Id"] for c in client.api.containers(all=True) if marker in c["Command"]]
    return containers + [f"pid {pid}" for pid in step_processes(marker)]


def wait_for_line(process: subprocess.Popen[str], pattern: str) -> None:
    """Read PROCESS's stderr until a line matches PATTERN (a regular expression)."""
    assert process.stderr is not None
    for line in process.stderr:
        if re.search(pattern, line):
            return
    raise AssertionError(f"never saw {pattern!r}")
