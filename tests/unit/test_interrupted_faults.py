"""Interruptions and limits that need no daemon: a Ctrl-C while changelogs are staged, and the
`build_timeout` setting (config key and command-line option)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockerpkg.api import Workspace, load_workspace
from dockerpkg.api.versioning import write_update, written_edits
from dockerpkg.cli import main
from dockerpkg.core.changelog import Author
from dockerpkg.core.config import load_config
from dockerpkg.core.plan import Plan
from dockerpkg.core.update import plan_update
from dockerpkg.effects.changelogs import TEMP_NAME, write_new_file
from dockerpkg.errors import DockerPkgError
from tests.support.compat import COMPAT
from tests.support.updates import copy_case


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return copy_case(COMPAT / "11-versions", tmp_path) / "images"


def workspace(tree: Path) -> Workspace:
    return load_workspace(str(tree), str(tree.parent / "config.yaml"), {})


def native_plan(ws: Workspace, tree: Path) -> Plan:
    return plan_update(
        ws.tree,
        ws.config,
        name="native",
        reason="Security update",
        version=None,
        author=Author("Release Bot", "bot@example.org"),
        date="Thu, 26 Nov 2026 16:53:53 +0000",
        directory=str(tree),
        digest=ws.digest,
    )


class TestInterruptedUpdate:
    """Ctrl-C (or SIGTERM, raised the same way) while staging: nothing changed, nothing left."""

    def test_interrupt_while_staging(self, tree: Path) -> None:
        ws = workspace(tree)
        plan = native_plan(ws, tree)
        before = {p: p.read_bytes() for p in tree.rglob("*") if p.is_file()}
        calls: list[str] = []

        def interrupted_on_third(path: str, data: bytes, mode: int) -> None:
            calls.append(path)
            write_new_file(path, data, mode)
            if len(calls) == 3:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            write_update(plan, ws, write=interrupted_on_third)
        assert {p: p.read_bytes() for p in tree.rglob("*") if p.is_file()} == before
        assert list(tree.rglob(TEMP_NAME)) == []
        assert written_edits(plan, ws) == ()

    def test_written_edits_after_a_complete_write(self, tree: Path) -> None:
        ws = workspace(tree)
        plan = native_plan(ws, tree)
        write_update(plan, ws)
        assert written_edits(plan, ws) == tuple(edit.path for edit in plan.edits)


class TestBuildTimeoutSetting:
    """`build_timeout` is seconds above 0, or empty for none."""

    @pytest.mark.parametrize(("text", "seconds"), [("30", 30.0), ("2.5", 2.5), ("", None)])
    def test_values(self, text: str, seconds: float | None) -> None:
        assert load_config([("c.yaml", f"build_timeout: {text}\n")]).build_timeout == seconds

    @pytest.mark.parametrize("text", ["0", "-1", ".inf", "nan"])
    def test_refused_values_name_the_line(self, text: str) -> None:
        with pytest.raises(DockerPkgError) as caught:
            load_config([("c.yaml", f"registry: r.example.org\nbuild_timeout: {text}\n")])
        assert str(caught.value) == (
            "c.yaml:2: error: bad value for 'build_timeout': expected a number of seconds above 0"
        )

    def test_not_a_number(self) -> None:
        with pytest.raises(DockerPkgError, match=r"c.yaml:1: error: bad value for 'build_timeout'"):
            load_config([("c.yaml", "build_timeout: soon\n")])

    @pytest.mark.parametrize("verb", ["apply", "build"])
    def test_option_refused_before_anything_is_read(
        self, verb: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert main([verb, "--build-timeout", "-3", str(tmp_path / "missing")]) == 1
        err = capsys.readouterr().err
        assert "--build-timeout: error: expected a number of seconds above 0" in err
