"""One writing run per tree: real processes holding, refusing and waiting for the lock.

The lock needs no Docker: `update` writes changelogs, so it shows every case here. The
builds that wait for one another are in tests/integration/test_secrets_and_locks.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dockerpkg.effects.treelock import lock_holder, tree_lock
from dockerpkg.errors import DockerPkgError
from tests.support.updates import write_tree

ROOT = Path(__file__).resolve().parents[2]
HOLDER = """\
import sys
from dockerpkg.effects.treelock import tree_lock
with tree_lock(sys.argv[1], wait=False):
    print("held", flush=True)
    sys.stdin.readline()
"""


def environment() -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DEBFULLNAME": "Lock Tester",
        "DEBEMAIL": "lock@example.org",
    }


def start_holder(tree: Path) -> subprocess.Popen[str]:
    """A process holding TREE's lock until a line arrives on its stdin."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tree)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=environment(),
    )
    assert holder.stdout is not None
    assert holder.stdout.readline() == "held\n"
    return holder


def release(holder: subprocess.Popen[str]) -> None:
    assert holder.stdin is not None
    holder.stdin.write("\n")
    holder.stdin.flush()
    assert holder.wait(timeout=10) == 0


def dockerpkg(*argv: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dockerpkg", *(str(a) for a in argv)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=environment(),
        timeout=60,
        check=False,
    )


def start_dockerpkg(*argv: str | Path, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "dockerpkg", *(str(a) for a in argv)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env=environment(),
    )


def wait_for_text(process: subprocess.Popen[str], text: str, timeout: float = 20) -> str:
    """Read PROCESS's stderr until TEXT shows (the process must still be running)."""
    assert process.stderr is not None
    seen = ""
    deadline = time.monotonic() + timeout
    while text not in seen:
        assert time.monotonic() < deadline, seen
        line = process.stderr.readline()
        assert line, f"stderr ended before {text!r}: {seen}"
        seen += line
    return seen


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    write_tree(tmp_path, {"base": ("1.0", []), "app": ("2.0", ["base"])})
    return tmp_path


def changelogs(root: Path) -> dict[str, bytes]:
    return {p.parent.name: p.read_bytes() for p in sorted(root.glob("images/*/changelog"))}


class TestHolder:
    """The pid holding the lock, as Linux lists it."""

    def test_pid_of_the_holder(self, tmp_path: Path) -> None:
        holder = start_holder(tmp_path)
        try:
            descriptor = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
            try:
                assert lock_holder(descriptor) == holder.pid
            finally:
                os.close(descriptor)
        finally:
            release(holder)

    def test_locks_file_format(self, tmp_path: Path) -> None:
        descriptor = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            info = os.fstat(descriptor)
            key = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
            locks = tmp_path / "locks"
            locks.write_text(
                f"1: POSIX  ADVISORY  WRITE 11 {key} 0 EOF\n"
                f"2: -> FLOCK  ADVISORY  WRITE 22 {key} 0 EOF\n"
                f"3: FLOCK  ADVISORY  WRITE 33 {key}0 0 EOF\n"
                f"4: FLOCK  ADVISORY  WRITE 44 {key} 0 EOF\n",
                encoding="ascii",
            )
            assert lock_holder(descriptor, str(locks)) == 44
            locks.write_text(f"1: FLOCK  ADVISORY  WRITE -1 {key} 0 EOF\n", encoding="ascii")
            assert lock_holder(descriptor, str(locks)) is None
            assert lock_holder(descriptor, str(tmp_path / "missing")) is None
        finally:
            os.close(descriptor)

    def test_same_folder_by_another_path(self, tmp_path: Path) -> None:
        (tmp_path / "tree").mkdir()
        (tmp_path / "link").symlink_to("tree")
        with tree_lock(str(tmp_path / "tree"), wait=False):
            with (
                pytest.raises(DockerPkgError) as caught,
                tree_lock(str(tmp_path / "link"), wait=False),
            ):
                pass
            assert str(caught.value) == (
                f"{tmp_path / 'link'}: error: another dockerpkg run (pid {os.getpid()}) holds "
                "the lock on this tree; wait for it to finish, or use --wait-lock"
            )
        with tree_lock(str(tmp_path / "link"), wait=False):
            pass  # released when the first block ended

    def test_missing_folder_is_left_to_the_tree_reader(self, tmp_path: Path) -> None:
        with tree_lock(str(tmp_path / "missing"), wait=False):
            pass


class TestRefuse:
    """Without --wait-lock, a second writing run stops at once and changes nothing."""

    @pytest.mark.parametrize(
        "argv",
        [
            ["update", "base", "images"],
            ["update", "--all", "images"],
            ["apply", "update", "base", "images"],
            ["build", "images"],
            ["apply", "images"],
            ["prune", "images"],
            ["apply", "prune", "images"],
        ],
    )
    def test_writing_verbs_refuse(self, tree: Path, argv: list[str]) -> None:
        before = changelogs(tree)
        holder = start_holder(tree / "images")
        try:
            result = dockerpkg(*argv, cwd=tree)
        finally:
            release(holder)
        assert result.returncode == 1, result.stderr
        assert result.stderr == (
            f"images: error: another dockerpkg run (pid {holder.pid}) holds the lock on this "
            "tree; wait for it to finish, or use --wait-lock\n"
            "dockerpkg: 1 error(s); nothing was changed\n"
        )
        assert result.stdout == ""
        assert changelogs(tree) == before

    def test_saved_plans_lock_the_tree_they_name(self, tree: Path) -> None:
        planned = dockerpkg("plan", "update", "base", "images", "--out", "plan.json", cwd=tree)
        assert planned.returncode == 0, planned.stderr
        before = changelogs(tree)
        holder = start_holder(tree / "images")
        try:
            for argv in (["apply", "update", "plan.json"], ["apply", "plan.json"]):
                result = dockerpkg(*argv, cwd=tree)
                assert result.returncode == 1, (argv, result.stderr)
                assert f"another dockerpkg run (pid {holder.pid}) holds" in result.stderr
        finally:
            release(holder)
        assert changelogs(tree) == before
        assert dockerpkg("apply", "plan.json", cwd=tree).returncode == 0
        assert changelogs(tree) != before

    def test_plans_need_no_lock(self, tree: Path) -> None:
        holder = start_holder(tree / "images")
        try:
            for argv in (
                ["plan", "--offline", "images"],
                ["plan", "update", "base", "images"],
                ["plan", "update", "--all", "images"],
            ):
                result = dockerpkg(*argv, cwd=tree)
                assert result.returncode == 0, (argv, result.stderr)
        finally:
            release(holder)

    def test_lock_of_a_killed_run_is_gone(self, tree: Path) -> None:
        holder = start_holder(tree / "images")
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        result = dockerpkg("update", "base", "images", cwd=tree)
        assert result.returncode == 0, result.stderr


class TestWait:
    """With --wait-lock, runs wait their turn and each sees what the one before wrote."""

    def test_waits_until_released(self, tree: Path) -> None:
        before = changelogs(tree)
        holder = start_holder(tree / "images")
        waiting = start_dockerpkg("update", "base", "--wait-lock", "images", cwd=tree)
        try:
            said = wait_for_text(waiting, "to release the lock")
            assert said == (
                f"images: waiting for another dockerpkg run (pid {holder.pid}) "
                "to release the lock\n"
            )
            time.sleep(0.5)
            assert waiting.poll() is None
            assert changelogs(tree) == before
        finally:
            release(holder)
        _, err = waiting.communicate(timeout=30)
        assert waiting.returncode == 0, err
        assert "Wrote 2 changelog(s)." in err
        assert b"(1.0-s1)" in changelogs(tree)["base"]

    def test_concurrent_updates_run_one_after_the_other(self, tree: Path) -> None:
        holder = start_holder(tree / "images")
        runs = [
            start_dockerpkg(
                "update", "base", "--reason", f"run {n}", "--wait-lock", "images", cwd=tree
            )
            for n in (1, 2, 3)
        ]
        try:
            for run in runs:
                wait_for_text(run, "to release the lock")
        finally:
            release(holder)
        for run in runs:
            _, err = run.communicate(timeout=60)
            assert run.returncode == 0, err
        base = changelogs(tree)["base"].decode()
        # Three whole entries, each bumping the one before: no run planned from a stale file.
        versions = [line.split()[1] for line in base.splitlines() if line.startswith("base (")]
        assert versions == ["(1.0-s3)", "(1.0-s2)", "(1.0-s1)", "(1.0)"]
        assert sorted(f"   run {n}" in base for n in (1, 2, 3)) == [True] * 3
        app = changelogs(tree)["app"].decode()
        assert [line.split()[1] for line in app.splitlines() if line.startswith("app (")] == [
            "(2.0-s3)",
            "(2.0-s2)",
            "(2.0-s1)",
            "(2.0)",
        ]


class TestNesting:
    """The lock covers the repository holding the tree: a run on a folder and one on a folder
    inside it exclude each other, inside a git repository or not."""

    def test_a_run_inside_a_locked_tree_is_refused(self, tree: Path) -> None:
        holder = start_holder(tree / "images")
        try:
            result = dockerpkg("update", "--all", "images/base", cwd=tree)
        finally:
            release(holder)
        assert result.returncode == 1, result.stderr
        assert result.stderr.splitlines()[0] == (
            f"images/base: error: another dockerpkg run (pid {holder.pid}) holds the lock on "
            f"{(tree / 'images').resolve()}, which holds this tree; wait for it to finish, or "
            "use --wait-lock"
        )

    def test_a_run_around_a_locked_subfolder_is_refused(self, tree: Path) -> None:
        holder = start_holder(tree / "images" / "base")
        try:
            result = dockerpkg("update", "--all", "images", cwd=tree)
        finally:
            release(holder)
        assert result.returncode == 1, result.stderr
        assert f"another dockerpkg run (pid {holder.pid}) holds the lock on this tree" in (
            result.stderr
        )

    def test_one_lock_per_git_repository(self, tmp_path: Path) -> None:
        (tmp_path / ".git").mkdir()
        for side in ("a", "b"):
            write_tree(tmp_path / side, {"base": ("1.0", [])})
        holder = start_holder(tmp_path / "a" / "images")
        try:
            result = dockerpkg("update", "--all", "b/images", cwd=tmp_path)
        finally:
            release(holder)
        assert result.returncode == 1, result.stderr
        assert (
            f"holds the lock on {tmp_path.resolve()}, the repository holding this tree"
            in result.stderr
        )

    def test_folders_side_by_side_run_at_once(self, tmp_path: Path) -> None:
        write_tree(tmp_path, {"x": ("1.0", []), "y": ("1.0", [])})
        holder = start_holder(tmp_path / "images" / "x")
        try:
            result = dockerpkg("update", "--all", "images/y", cwd=tmp_path)
        finally:
            release(holder)
        assert result.returncode == 0, result.stderr

    def test_tree_and_subfolder_at_once_one_finishes(self, tree: Path) -> None:
        """Both at once, again and again: one is refused or waits, the other finishes; no
        staged file is ever left, and the winner never fails."""
        for attempt in range(8):
            wait = ["--wait-lock"] if attempt % 2 else []
            runs = [
                start_dockerpkg("update", "--all", *wait, folder, cwd=tree)
                for folder in ("images", "images/base")
            ]
            results = [(run.wait(timeout=60), run.communicate()[1]) for run in runs]
            for status, err in results:
                assert status == 0 or (status == 1 and "holds the lock" in err), err
            assert any(status == 0 for status, _ in results), results
            if wait:
                assert all(status == 0 for status, _ in results), results
            assert not list(tree.rglob(".changelog.dockerpkg-tmp"))
