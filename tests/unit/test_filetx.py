"""The file-transaction engine on real files in temporary folders: all or none, the journal
there exactly while targets may be half swapped, and one recovery path that finishes a write
killed mid-swap. Failures are injected through the engine's own `write`/`replace`
parameters (real functions failing on purpose), never mocks of the file system."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dockerpkg.effects import filetx
from dockerpkg.errors import DockerPkgError

WORDING = filetx.Wording(
    stage_failed="cannot stage: {cause}; nothing was changed",
    changed="changed meanwhile",
    replace_failed="cannot replace: {cause}",
    not_restored="not put back: {files}",
    restored="nothing was changed",
    journal_failed="cannot journal: {cause}",
    journal_there="another run's journal",
)
RECORD = b'{"format": 1}\n'


class Killed(BaseException):
    """As SIGKILL: nothing after it runs (no undo: it is no OSError)."""


def files(tmp_path: Path, count: int) -> list[filetx.Change]:
    """COUNT real files under TMP_PATH, each to get a new text."""
    changes = []
    for n in range(count):
        path = tmp_path / f"f{n}"
        path.write_bytes(f"old {n}\n".encode())
        path.chmod(0o640)
        changes.append(
            filetx.Change(
                shown=f"f{n}",
                path=str(path),
                staged=str(tmp_path / f".f{n}.dockerpkg-tmp"),
                before=path.read_bytes(),
                after=f"new {n}\n".encode(),
                mode=path.stat().st_mode,
            )
        )
    return changes


def journal(tmp_path: Path) -> filetx.Journal:
    return filetx.Journal(str(tmp_path / "j"), str(tmp_path / "j-tmp"), "j")


def contents(tmp_path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in tmp_path.iterdir()}


class TestCommit:
    def test_every_file_written_journal_there_only_meanwhile(self, tmp_path: Path) -> None:
        changes = files(tmp_path, 3)
        seen: list[bytes] = []

        def replace(source: str, target: str) -> None:
            seen.append((tmp_path / "j").read_bytes())  # the journal is whole while swapping
            os.replace(source, target)

        filetx.commit(journal(tmp_path), RECORD, changes, WORDING, replace=replace)
        assert seen == [RECORD] * 3
        assert contents(tmp_path) == {f"f{n}": f"new {n}\n".encode() for n in range(3)}
        assert all((tmp_path / f"f{n}").stat().st_mode & 0o777 == 0o640 for n in range(3))

    def test_a_journal_already_there_is_refused(self, tmp_path: Path) -> None:
        changes = files(tmp_path, 2)
        (tmp_path / "j").write_bytes(b"theirs")
        before = contents(tmp_path)
        with pytest.raises(DockerPkgError, match="j: error: another run's journal"):
            filetx.commit(journal(tmp_path), RECORD, changes, WORDING)
        assert contents(tmp_path) == before

    def test_a_journal_that_cannot_be_written_changes_nothing(self, tmp_path: Path) -> None:
        changes = files(tmp_path, 2)
        before = contents(tmp_path)
        nowhere = filetx.Journal(str(tmp_path / "j"), str(tmp_path / "gone" / "j-tmp"), "j")
        with pytest.raises(DockerPkgError) as caught:
            filetx.commit(nowhere, RECORD, changes, WORDING)
        assert str(caught.value) == "j: error: cannot journal: No such file or directory"
        assert contents(tmp_path) == before

    def test_a_failed_staging_changes_nothing(self, tmp_path: Path) -> None:
        changes = files(tmp_path, 3)
        before = contents(tmp_path)
        calls: list[str] = []

        def write(path: str, data: bytes, mode: int) -> None:
            calls.append(path)
            if len(calls) == 2:
                raise OSError(28, "No space left on device")
            filetx.write_new_file(path, data, mode)

        with pytest.raises(DockerPkgError) as caught:
            filetx.commit(journal(tmp_path), RECORD, changes, WORDING, write=write)
        assert str(caught.value) == (
            "f1: error: cannot stage: No space left on device; nothing was changed"
        )
        assert contents(tmp_path) == before

    def test_a_staged_file_of_another_run_is_left(self, tmp_path: Path) -> None:
        changes = files(tmp_path, 2)
        Path(changes[1].staged).write_bytes(b"another run's")
        before = contents(tmp_path)
        with pytest.raises(DockerPkgError, match="f1: error: cannot stage: File exists"):
            filetx.commit(journal(tmp_path), RECORD, changes, WORDING)
        assert contents(tmp_path) == before

    def test_a_file_changed_while_staging_changes_nothing(self, tmp_path: Path) -> None:
        changes = files(tmp_path, 2)

        def write(path: str, data: bytes, mode: int) -> None:
            filetx.write_new_file(path, data, mode)
            Path(changes[0].path).write_bytes(b"edited meanwhile\n")

        with pytest.raises(DockerPkgError, match="f0: error: changed meanwhile"):
            filetx.commit(journal(tmp_path), RECORD, changes, WORDING, write=write)
        assert contents(tmp_path) == {"f0": b"edited meanwhile\n", "f1": b"old 1\n"}

    def test_a_failed_rename_is_undone(self, tmp_path: Path) -> None:
        changes = files(tmp_path, 3)
        before = contents(tmp_path)
        calls: list[str] = []

        def replace(source: str, target: str) -> None:
            calls.append(target)
            if len(calls) == 3:
                raise OSError(5, "Input/output error")
            os.replace(source, target)

        with pytest.raises(DockerPkgError) as caught:
            filetx.commit(journal(tmp_path), RECORD, changes, WORDING, replace=replace)
        assert str(caught.value) == (
            "f2: error: cannot replace: Input/output error; nothing was changed"
        )
        assert len(calls) == 5  # two swapped, the third failed, two put back
        assert contents(tmp_path) == before


class TestRecover:
    def killed_mid_swap(self, tmp_path: Path) -> list[filetx.Change]:
        changes = files(tmp_path, 3)

        def replace(source: str, target: str) -> None:
            if target == changes[1].path:
                raise Killed
            os.replace(source, target)

        with pytest.raises(Killed):
            filetx.commit(journal(tmp_path), RECORD, changes, WORDING, replace=replace)
        return changes

    def test_a_write_killed_mid_swap_keeps_its_journal(self, tmp_path: Path) -> None:
        self.killed_mid_swap(tmp_path)
        expected = {"j": RECORD, "f0": b"new 0\n", "f1": b"old 1\n", "f2": b"old 2\n"}
        assert contents(tmp_path) == expected

    def test_recovery_finishes_it_and_removes_what_was_left(self, tmp_path: Path) -> None:
        changes = self.killed_mid_swap(tmp_path)
        left = tmp_path / ".f1.dockerpkg-tmp"
        left.write_bytes(b"new")  # as if staging had been cut short
        pending = [c for c in changes if Path(c.path).read_bytes() == c.before]
        filetx.recover(str(tmp_path / "j"), pending, [str(left)], WORDING)
        assert contents(tmp_path) == {f"f{n}": f"new {n}\n".encode() for n in range(3)}

    def test_a_failed_recovery_keeps_the_journal(self, tmp_path: Path) -> None:
        changes = self.killed_mid_swap(tmp_path)
        before = contents(tmp_path)

        def write(path: str, data: bytes, mode: int) -> None:
            raise OSError(13, "Permission denied")

        pending = [c for c in changes if Path(c.path).read_bytes() == c.before]
        with pytest.raises(DockerPkgError, match="f1: error: cannot stage: Permission denied"):
            filetx.recover(str(tmp_path / "j"), pending, [], WORDING, write=write)
        assert contents(tmp_path) == before
        filetx.recover(str(tmp_path / "j"), pending, [], WORDING)  # run again: it goes on
        assert "j" not in contents(tmp_path)
