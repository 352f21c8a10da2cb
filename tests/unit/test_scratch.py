"""Temporary folders of a run carry their owner (pid and start time): a later run removes
those whose owner is gone, and nothing else."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from dockerpkg.effects import scratch


def ended_process() -> tuple[int, int]:
    """The pid and start time of a process that has ended."""
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    began = scratch.start_time(child.pid)
    assert began is not None
    child.communicate(b"")
    assert scratch.start_time(child.pid) is None
    return child.pid, began


def test_a_folder_names_its_owner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    folder = Path(scratch.make_folder("context-team/app"))
    try:
        assert folder.parent == tmp_path
        assert folder.name.startswith(
            f"dockerpkg.{os.getpid()}.{scratch.start_time(os.getpid())}.context-team-app."
        )
        assert oct(folder.stat().st_mode & 0o777) == "0o700"
    finally:
        folder.rmdir()


def test_only_folders_of_runs_that_are_gone_are_removed(tmp_path: Path) -> None:
    pid, began = ended_process()
    me, mine = os.getpid(), scratch.start_time(os.getpid())
    assert mine is not None
    dead = tmp_path / f"dockerpkg.{pid}.{began}.context-app.abc123"
    (dead / "context").mkdir(parents=True)
    (dead / "context" / "Dockerfile").write_text("FROM scratch\n", encoding="utf-8")
    reused = tmp_path / f"dockerpkg.{me}.{mine + 1}.stage-app.def456"  # the pid, used again
    reused.mkdir()
    live = tmp_path / f"dockerpkg.{me}.{mine}.context-app.ghi789"
    live.mkdir()
    others = [
        tmp_path / "dockerpkg-app-old",  # not of this kind
        tmp_path / f"dockerpkg-{pid}.{began}.x",
    ]
    for other in others:
        other.mkdir()
    target = tmp_path / "elsewhere"
    target.mkdir()
    link = tmp_path / f"dockerpkg.{pid}.{began}.context-link.jkl012"
    link.symlink_to(target)
    plain = tmp_path / f"dockerpkg.{pid}.{began}.context-file.mno345"
    plain.write_text("", encoding="utf-8")

    removed = scratch.remove_abandoned(str(tmp_path))

    assert sorted(removed) == sorted([str(dead), str(reused)])
    assert not dead.exists()
    assert not reused.exists()
    for kept in [live, *others, target, link, plain]:
        assert kept.exists() or kept.is_symlink(), kept
