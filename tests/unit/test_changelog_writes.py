"""Changelog writes are all or nothing, on real files in temporary folders.

Failures are injected through the writer's own parameters (`write`, `replace`): real
functions that call the real ones, failing on the Nth call, not mocks of the file system.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from dockerpkg.api import Workspace, load_workspace
from dockerpkg.api.versioning import write_update
from dockerpkg.cli import main
from dockerpkg.core.changelog import Author
from dockerpkg.core.plan import Plan
from dockerpkg.core.update import plan_update
from dockerpkg.effects import changelogs
from dockerpkg.effects.changelogs import TEMP_NAME, apply_edits, write_new_file
from dockerpkg.errors import DockerPkgError
from tests.support.compat import COMPAT
from tests.support.updates import copy_case

NOW = "Thu, 26 Nov 2026 16:53:53 +0000"


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ROOT (temporary ones included) and its bytes."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def staged_files(root: Path) -> list[Path]:
    return sorted(root.rglob(TEMP_NAME))


def failing_on(
    call: int, real: Callable[..., None], error: OSError
) -> tuple[Callable[..., None], list[tuple[object, ...]]]:
    """REAL, except that call number CALL (1-based) raises ERROR; also returns the calls."""
    calls: list[tuple[object, ...]] = []

    def wrapper(*args: object) -> None:
        calls.append(args)
        if len(calls) == call:
            raise error
        real(*args)

    return wrapper, calls


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return copy_case(COMPAT / "11-versions", tmp_path) / "images"


def workspace(tree: Path) -> Workspace:
    return load_workspace(str(tree), str(tree.parent / "config.yaml"), {})


def native_plan(tree: Path) -> Plan:
    ws = workspace(tree)
    return plan_update(
        ws.tree,
        ws.config,
        name="native",
        reason="Security update",
        version=None,
        author=Author("Release Bot", "bot@example.org"),
        date=NOW,
        directory=str(tree),
        digest=ws.digest,
    )


def originals(ws: Workspace) -> dict[str, str]:
    return {s.file("changelog"): s.changelog for s in ws.snapshot.images}


class TestAllOrNothing:
    """A failure at any point before the swap leaves every file as it was."""

    def test_third_write_failing_changes_nothing(self, tree: Path) -> None:
        before = snapshot(tree)
        plan = native_plan(tree)
        assert len(plan.edits) == 5
        write, calls = failing_on(3, write_new_file, OSError(28, "No space left on device"))
        with pytest.raises(DockerPkgError) as caught:
            write_update(plan, workspace(tree), write=write)
        assert len(calls) == 3
        assert str(caught.value) == (
            "security/changelog: error: cannot write the new changelog: "
            "No space left on device; nothing was changed"
        )
        assert snapshot(tree) == before
        assert staged_files(tree) == []

    def test_success_writes_every_file_and_leaves_no_staged_file(self, tree: Path) -> None:
        plan = native_plan(tree)
        before = snapshot(tree)
        write_update(plan, workspace(tree))
        after = snapshot(tree)
        for edit in plan.edits:
            assert after[edit.path] == edit.entry.encode() + before[edit.path]
        assert set(after) == set(before)
        assert staged_files(tree) == []

    def test_failed_rename_is_undone(self, tree: Path) -> None:
        plan = native_plan(tree)
        ws = workspace(tree)
        before = snapshot(tree)
        replace, calls = failing_on(4, os.replace, OSError(5, "Input/output error"))
        with pytest.raises(DockerPkgError, match="Input/output error; nothing was changed"):
            apply_edits(str(tree), plan.edits, originals(ws), replace=replace)
        # Three swapped, the fourth failed, then three put back.
        assert len(calls) == 7
        assert snapshot(tree) == before
        assert staged_files(tree) == []

    def test_undo_that_fails_says_which_files(self, tree: Path) -> None:
        plan = native_plan(tree)
        ws = workspace(tree)
        calls: list[str] = []

        def replace(source: str, target: str) -> None:
            calls.append(target)
            if len(calls) >= 3:  # the third swap fails, and so does every undo
                raise OSError(5, "Input/output error")
            os.replace(source, target)

        with pytest.raises(DockerPkgError) as caught:
            apply_edits(str(tree), plan.edits, originals(ws), replace=replace)
        assert "could not be put back: debian-rev/changelog, native/changelog" in str(caught.value)
        assert staged_files(tree) == []


class TestStaleFiles:
    """The files are compared with what the plan was made from, before and after staging."""

    def test_changed_before_writing(self, tree: Path) -> None:
        plan = native_plan(tree)
        ws = workspace(tree)
        leaf = tree / "leaf" / "changelog"
        leaf.write_text(leaf.read_text("utf-8") + "\n", "utf-8")
        before = snapshot(tree)
        with pytest.raises(DockerPkgError, match="leaf/changelog:1: error: changed since the plan"):
            apply_edits(str(tree), plan.edits, originals(ws))
        assert snapshot(tree) == before

    def test_changed_while_staging(self, tree: Path) -> None:
        plan = native_plan(tree)
        ws = workspace(tree)
        leaf = tree / "leaf" / "changelog"

        def write(path: str, data: bytes, mode: int) -> None:
            write_new_file(path, data, mode)
            if path.endswith(f"dated/{TEMP_NAME}"):
                leaf.write_text("edited meanwhile\n", "utf-8")

        with pytest.raises(DockerPkgError, match="changed while the update was written"):
            apply_edits(str(tree), plan.edits, originals(ws), write=write)
        after = snapshot(tree)
        assert after.pop("leaf/changelog") == b"edited meanwhile\n"
        assert all(after[e.path] == ws_text(ws, e.path) for e in plan.edits if e.image != "leaf")
        assert staged_files(tree) == []

    def test_leftover_staged_file_is_not_overwritten(self, tree: Path) -> None:
        leftover = tree / "leaf" / TEMP_NAME
        leftover.write_text("from a run that was killed\n", "utf-8")
        plan = native_plan(tree)
        before = snapshot(tree)
        with pytest.raises(DockerPkgError) as caught:
            write_update(plan, workspace(tree))
        assert str(caught.value).splitlines() == [
            f"leaf/{TEMP_NAME}: error: 1 staged changelog(s) left by an interrupted update, with "
            f"no journal (first: leaf/{TEMP_NAME}); dockerpkg update --discard "
            f"{os.path.relpath(tree)} removes them",
            f"leaf/{TEMP_NAME}: error: staged by the interrupted update; not read as part of "
            "the tree",
        ]
        assert snapshot(tree) == before


def ws_text(ws: Workspace, path: str) -> bytes:
    return originals(ws)[path].encode()


class TestPermissions:
    """A rewritten changelog keeps its mode, whatever the umask."""

    def test_mode_kept(self, tree: Path) -> None:
        target = tree / "leaf" / "changelog"
        target.chmod(0o640)
        previous = os.umask(0o077)
        try:
            write_update(native_plan(tree), workspace(tree))
        finally:
            os.umask(previous)
        assert stat.S_IMODE(target.stat().st_mode) == 0o640


class TestLateProblems:
    """A problem found with the last image in build order stops the run before any write.

    An automatic bump cannot fail (tests/unit/test_versions.py proves it for every version
    python-debian reads), so the late problem here is a --version-suffix that would not make
    the last image's version greater.
    """

    def test_update_all_refused_before_writing(
        self, tree: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        leaf = tree / "leaf" / "changelog"
        leaf.write_text(leaf.read_text("utf-8").replace("leaf (5)", "leaf (5-20270101)"), "utf-8")
        before = snapshot(tree)
        monkeypatch.setenv("DEBFULLNAME", "Release Bot")
        monkeypatch.setenv("DEBEMAIL", "bot@example.org")
        args = ["-c", str(tree.parent / "config.yaml"), "update", "--all", str(tree)]
        assert main([*args, "--version-suffix", "20261126"]) == 1
        err = capsys.readouterr().err
        assert "leaf/changelog:1: error: image 'leaf': --version-suffix 20261126 gives " in err
        assert snapshot(tree) == before

    def test_unparsable_entry_refused_at_plan_time(self, tree: Path) -> None:
        ws = workspace(tree)
        with pytest.raises(DockerPkgError, match="would not parse as a changelog entry"):
            plan_update(
                ws.tree,
                ws.config,
                name="leaf",
                reason="Security update",
                version=None,
                author=Author("Release Bot", "bot@example.org"),
                date="not\na date",
                directory=str(tree),
                digest=ws.digest,
            )


def test_real_writer_refuses_existing_files(tmp_path: Path) -> None:
    """The writer never truncates a file that is already there."""
    path = tmp_path / "file"
    path.write_bytes(b"kept")
    with pytest.raises(FileExistsError):
        changelogs.write_new_file(str(path), b"new", 0o644)
    assert path.read_bytes() == b"kept"
