"""`update`: docker-pkg's changelog entries byte for byte, exact names, --all, and stability."""

from __future__ import annotations

import datetime
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from dockerpkg.api import Workspace, load_workspace
from dockerpkg.api.versioning import write_update
from dockerpkg.cli import main
from dockerpkg.core.changelog import Author, head_of
from dockerpkg.core.config import Config
from dockerpkg.core.plan import Op, Reason
from dockerpkg.core.serialize import plan_from_json, plan_to_json, plan_to_text
from dockerpkg.core.update import plan_update, plan_update_all
from dockerpkg.effects.author import changelog_date, resolve_author
from dockerpkg.errors import DockerPkgError
from tests.support.compat import COMPAT
from tests.support.golden import check_golden
from tests.support.updates import copy_case, write_tree

BOT = Author("Release Bot", "bot@example.org")
NOW = "Thu, 26 Nov 2026 16:53:53 +0000"
BOT_ENV = {"DEBFULLNAME": "Release Bot", "DEBEMAIL": "bot@example.org"}
TRAILER_DATE = re.compile(
    r"(?m)^( -- .*?>  )[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} [\d:]{8} [-+]\d{4}$"
)

UPDATE_CASES = sorted(COMPAT.glob("*/update-*.json"))


def compat_case(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def workspace_of(case: Path, directory: str = "images") -> Workspace:
    return load_workspace(str(case / directory), str(case / "config.yaml"), {})


def options_of(command: list[str]) -> tuple[str, str, str | None]:
    """NAME, reason and version from a compat case's docker-pkg command line."""
    reason = command[command.index("--reason") + 1]
    version = command[command.index("--version") + 1] if "--version" in command else None
    return command[1], reason, version


def prepended(before: str, after: str) -> str:
    assert after.endswith(before)
    return after[: len(after) - len(before)]


class TestCompatEntries:
    """Each docker-pkg update case: the same images, the same text, only the date differs."""

    @pytest.mark.parametrize(
        "path", UPDATE_CASES, ids=[f"{p.parent.name}/{p.stem}" for p in UPDATE_CASES]
    )
    def test_plan_has_docker_pkg_entries(self, path: Path) -> None:
        case = compat_case(path)
        name, reason, version = options_of(case["command"])
        workspace = workspace_of(path.parent)
        author = Author(case["env"]["DEBFULLNAME"], case["env"]["DEBEMAIL"])
        plan = plan_update(
            workspace.tree,
            workspace.config,
            name=name,
            reason=reason,
            version=version,
            author=author,
            date="DATE",
            directory="images",
            digest=workspace.digest,
        )
        got = {edit.path.removesuffix("/changelog"): edit.entry for edit in plan.edits}
        assert got == case["changed"]

    @pytest.mark.parametrize(
        "path", UPDATE_CASES, ids=[f"{p.parent.name}/{p.stem}" for p in UPDATE_CASES]
    )
    def test_cli_writes_docker_pkg_entries(
        self, path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        case = compat_case(path)
        root = copy_case(path.parent, tmp_path)
        before = {
            p: (root / "images" / p / "changelog").read_text("utf-8") for p in case["changed"]
        }
        all_changelogs = {p: p.read_bytes() for p in (root / "images").rglob("changelog")}
        for key, value in case["env"].items():
            monkeypatch.setenv(key, value)
        monkeypatch.chdir(root)
        command = case["command"]
        assert main([*command[:2], "images", *command[2:]]) == 0
        for folder, text in before.items():
            after = (root / "images" / folder / "changelog").read_text("utf-8")
            assert TRAILER_DATE.sub(r"\1DATE", prepended(text, after)) == case["changed"][folder]
        untouched = {
            p
            for p in all_changelogs
            if p.parent.relative_to(root / "images").as_posix() not in before
        }
        assert all(p.read_bytes() == all_changelogs[p] for p in untouched)


class TestGoldenPlans:
    """The update plan of a compat case, as text and JSON, is a reviewed golden file."""

    @pytest.mark.parametrize("fmt", ["txt", "json"])
    def test_native(self, fmt: str, monkeypatch: pytest.MonkeyPatch) -> None:
        # Relative paths: the digest covers the config's path, which must not be this checkout's.
        monkeypatch.chdir(COMPAT / "11-versions")
        workspace = load_workspace("images", "config.yaml", {})
        plan = plan_update(
            workspace.tree,
            workspace.config,
            name="native",
            reason="Security update",
            version=None,
            author=BOT,
            date="DATE",
            directory="images",
            digest=workspace.digest,
        )
        text = plan_to_json(plan) if fmt == "json" else plan_to_text(plan)
        check_golden(f"plans/update-11-native.{fmt}", text)
        if fmt == "json":
            assert plan_from_json(text, "plan.json") == plan


def update(workspace: Workspace, name: str, version: str | None = None) -> Any:
    return plan_update(
        workspace.tree,
        workspace.config,
        name=name,
        reason="Security update",
        version=version,
        author=BOT,
        date=NOW,
        directory=workspace.directory,
        digest=workspace.digest,
    )


class TestNames:
    """NAME is an image name, matched exactly; a wrong one is answered with close names."""

    def test_exact_match_only(self, tmp_path: Path) -> None:
        # docker-pkg matched the glob *base:* and so also updated "database".
        root = write_tree(
            tmp_path, {"base": ("1.0", []), "database": ("2.0", []), "app": ("3", ["base"])}
        )
        plan = update(workspace_of(root), "base")
        assert [(e.image, e.new_version) for e in plan.edits] == [
            ("base", "1.0-s1"),
            ("app", "3-s1"),
        ]

    def test_unknown_name_lists_close_names(self, tmp_path: Path) -> None:
        root = write_tree(
            tmp_path, {"base": ("1.0", []), "database": ("2.0", []), "app": ("3", [])}
        )
        with pytest.raises(DockerPkgError) as caught:
            update(workspace_of(root), "ase")
        assert str(caught.value).endswith(
            "error: no image is named 'ase'; did you mean base, database?"
        )

    def test_unknown_name_far_from_all_lists_images(self, tmp_path: Path) -> None:
        root = write_tree(tmp_path, {"base": ("1.0", []), "app": ("3", [])})
        with pytest.raises(
            DockerPkgError, match="no image is named 'zzz'; the images are: app, base"
        ):
            update(workspace_of(root), "zzz")


class TestDependents:
    """Dependents come in build order, each once, with docker-pkg's refresh reason."""

    def test_diamond(self, tmp_path: Path) -> None:
        root = write_tree(
            tmp_path,
            {
                "base": ("1", []),
                "left": ("1", ["base"]),
                "right": ("1", ["base"]),
                "top": ("1", ["left", "right"]),
                "other": ("1", []),
            },
        )
        plan = update(workspace_of(root), "base")
        assert [s.image for s in plan.steps] == ["base", "left", "right", "top"]
        assert [s.reason for s in plan.steps] == [Reason.REQUESTED] + [Reason.PARENT_UPDATED] * 3
        assert all(s.op is Op.WRITE_CHANGELOG for s in plan.steps)
        assert plan.steps[3].detail == "1 -> 1-s1"
        assert "Refresh for update in parent image base:\n   Security update" in plan.edits[3].entry

    def test_version_only_for_the_named_image(self, tmp_path: Path) -> None:
        root = write_tree(tmp_path, {"base": ("1", []), "app": ("1", ["base"])})
        plan = update(workspace_of(root), "base", version="2")
        assert [e.new_version for e in plan.edits] == ["2", "1-s1"]

    def test_version_not_greater_is_refused(self, tmp_path: Path) -> None:
        root = write_tree(tmp_path, {"base": ("1.0", []), "app": ("1", ["base"])})
        with pytest.raises(DockerPkgError) as caught:
            update(workspace_of(root), "base", version="1.0~rc1")
        assert str(caught.value) == (
            "base/changelog:1: error: image 'base': --version 1.0~rc1 is not greater than "
            "the current version 1.0"
        )

    def test_version_that_is_no_docker_tag_is_noted(self, tmp_path: Path) -> None:
        root = write_tree(tmp_path, {"base": ("1.0", [])})
        plan = update(workspace_of(root), "base", version="2:1.0")
        assert plan.notes == (
            "base: version 2:1.0 is not a valid Docker tag; building it will fail",
        )


class TestChangelogHead:
    """The check that a new entry parses: name and version of the newest entry, or None."""

    @pytest.mark.parametrize("text", ["", "not a changelog\n", "x (1.0) d; urgency=high\n"])
    def test_unparsable(self, text: str) -> None:
        assert head_of(text) is None

    def test_parsable(self) -> None:
        text = (COMPAT / "11-versions/images/native/changelog").read_text("utf-8")
        assert head_of(text) == ("native", "0.4.1")


class TestApplyThenPlanAgain:
    """After writing, the tree reads the new versions as current, and a new plan starts there."""

    def test_versions_move_on(self, tmp_path: Path) -> None:
        root = copy_case(COMPAT / "11-versions", tmp_path)
        first = update(workspace_of(root), "native")
        written = write_update(first, workspace_of(root))
        assert written == tuple(e.path for e in first.edits)
        again = workspace_of(root)
        current = {name: image.spec.version for name, image in again.tree.images.items()}
        assert current == {e.image: e.new_version for e in first.edits}
        second = update(again, "native")
        assert [e.old_version for e in second.edits] == [e.new_version for e in first.edits]
        assert [e.new_version for e in second.edits] == [
            "0.4.1-s2",
            "2.0.3-1-s2",
            "0.4.1-s4",
            "1.21-1-20260816-s2",
            "5-s2",
        ]

    def test_saved_plan_is_refused_once_applied(self, tmp_path: Path) -> None:
        root = copy_case(COMPAT / "11-versions", tmp_path)
        plan = update(workspace_of(root), "leaf")
        write_update(plan, workspace_of(root))
        with pytest.raises(DockerPkgError, match="stale plan"):
            write_update(plan, workspace_of(root))


class TestUpdateAll:
    """`update --all`: every selected image and its dependents, with --version-suffix."""

    def plan(self, root: Path, select: str | None, suffix: str | None) -> Any:
        workspace = workspace_of(root)
        return plan_update_all(
            workspace.tree,
            workspace.config,
            select=select,
            reason="Scheduled rebuild",
            version_suffix=suffix,
            author=BOT,
            date="DATE",
            directory="images",
            digest=workspace.digest,
        )

    def test_version_suffix_everywhere(self) -> None:
        plan = self.plan(COMPAT / "11-versions", None, "20261126")
        assert {e.image: e.new_version for e in plan.edits} == {
            "native": "0.4.1-20261126",
            "debian-rev": "2.0.3-1-20261126",
            "security": "0.4.1-s2-20261126",
            "dated": "1.21-1-20261126",
            "leaf": "5-20261126",
        }
        assert {s.reason for s in plan.steps} == {Reason.SCHEDULED_REFRESH}
        assert all("   Scheduled rebuild\n" in e.entry for e in plan.edits)

    def test_select_brings_dependents(self) -> None:
        plan = self.plan(COMPAT / "11-versions", "*/dated:*", "20261126")
        assert [(s.image, s.reason) for s in plan.steps] == [
            ("dated", Reason.SCHEDULED_REFRESH),
            ("leaf", Reason.PARENT_UPDATED),
        ]
        assert "Refresh for update in parent image dated:\n" in plan.edits[1].entry

    def test_several_selected_parents_are_named(self) -> None:
        plan = self.plan(COMPAT / "11-versions", "*/[ds]e*", None)
        leaf = next(e for e in plan.edits if e.image == "leaf")
        assert "Refresh for update in parent images debian-rev, security:\n" in leaf.entry

    def test_without_suffix_bumps(self) -> None:
        plan = self.plan(COMPAT / "11-versions", "*/leaf:*", None)
        assert [(e.image, e.new_version) for e in plan.edits] == [("leaf", "5-s1")]

    def test_no_match_is_a_note(self) -> None:
        plan = self.plan(COMPAT / "11-versions", "*/nothing:*", None)
        assert plan.edits == ()
        assert plan.notes == ("no image matches --select */nothing:*",)

    def test_every_problem_reported_before_writing(self, tmp_path: Path) -> None:
        root = write_tree(
            tmp_path, {"a": ("1-20270101", []), "b": ("1", ["a"]), "c": ("2-20270101", [])}
        )
        with pytest.raises(DockerPkgError) as caught:
            self.plan(root, None, "20261126")
        assert [p.location.path for p in caught.value.problems] == ["a/changelog", "c/changelog"]


class TestCommandLine:
    """The update commands: plan, apply a saved plan, and docker-pkg's verb."""

    @pytest.fixture
    def tree(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
        root = copy_case(COMPAT / "11-versions", tmp_path)
        monkeypatch.chdir(root)
        for key, value in BOT_ENV.items():
            monkeypatch.setenv(key, value)
        return root

    def changelogs(self, root: Path) -> dict[Path, bytes]:
        return {p: p.read_bytes() for p in sorted(root.rglob("changelog"))}

    def test_plan_writes_nothing(self, tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
        before = self.changelogs(tree)
        assert main(["plan", "update", "leaf", "images", "--detailed-exitcode"]) == 2
        out = capsys.readouterr().out
        assert out.startswith(
            "write_changelog  leaf  registry.example.org/leaf:5  (requested) [5 -> 5-s1]\n"
        )
        assert out.endswith("Plan: 1 changelogs to write.\n")
        assert self.changelogs(tree) == before

    def test_saved_plan_applies_once(self, tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["plan", "update", "native", "images", "--out", "plan.json"]) == 0
        assert main(["apply", "update", "plan.json"]) == 0
        assert (tree / "images/leaf/changelog").read_text("utf-8").startswith("leaf (5-s1) ")
        capsys.readouterr()
        assert main(["apply", "update", "plan.json"]) == 1
        assert "stale plan" in capsys.readouterr().err

    def test_bad_version_changes_nothing(
        self, tree: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        before = self.changelogs(tree)
        assert main(["update", "security", "--version", "0.4.1", "images"]) == 1
        err = capsys.readouterr().err
        assert (
            "security/changelog:1: error: image 'security': --version 0.4.1 is not greater" in err
        )
        assert self.changelogs(tree) == before

    def test_all_with_suffix(self, tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
        args = [
            "update",
            "--all",
            "images",
            "--select",
            "*/dated:*",
            "--version-suffix",
            "20261126",
        ]
        assert main(args) == 0
        assert (
            (tree / "images/dated/changelog")
            .read_text("utf-8")
            .startswith("dated (1.21-1-20261126) ")
        )
        assert (tree / "images/leaf/changelog").read_text("utf-8").startswith("leaf (5-20261126) ")

    def test_json(self, tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["plan", "update", "leaf", "images", "--json"]) == 0
        data = json.loads(capsys.readouterr().out)
        assert data["action"] == "update"
        assert [e["new_version"] for e in data["edits"]] == ["5-s1"]

    def test_version_with_all_is_refused(
        self, tree: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        # Not taken as an abbreviation of --version-suffix.
        assert main(["update", "--all", "images", "--version", "9"]) == 1
        assert "with --all, use --version-suffix" in capsys.readouterr().err

    def test_options_between_name_and_directory(
        self, tree: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        # docker-pkg's documented order: update NAME --reason TEXT --version VER DIRECTORY.
        args = ["update", "security", "--reason", "Rebuild", "--version", "0.5.0-1", "images"]
        assert main(args) == 0
        assert (
            (tree / "images/security/changelog")
            .read_text("utf-8")
            .startswith("security (0.5.0-1) wikimedia; urgency=high\n\n   Rebuild\n")
        )

    @pytest.mark.parametrize(
        "args",
        [
            ["update", "--all", "leaf", "images"],
            ["update", "leaf"],
            ["update", "leaf", "images", "--version-suffix", "1"],
        ],
    )
    def test_usage_errors(self, tree: Path, args: list[str]) -> None:
        with pytest.raises(SystemExit) as caught:
            main(args)
        assert caught.value.code == 2


class TestAuthor:
    """DEBFULLNAME/DEBEMAIL, else git (from the tree), else the config's fallbacks."""

    def test_environment_first(self, tmp_path: Path) -> None:
        author = resolve_author(BOT_ENV, Config(), cwd=str(tmp_path))
        assert author == BOT

    def test_git_then_fallbacks(self, tmp_path: Path) -> None:
        subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
        subprocess.run(["git", "-C", str(tmp_path), "config", "user.name", "Git User"], check=True)
        env = {
            "HOME": str(tmp_path / "home"),
            "PATH": os.environ["PATH"],
            "GIT_CONFIG_NOSYSTEM": "1",
        }
        author = resolve_author(
            env, Config(fallback_email="fallback@example.org"), cwd=str(tmp_path)
        )
        assert author == Author("Git User", "fallback@example.org")
        mixed = resolve_author({**env, "DEBEMAIL": "me@example.org"}, Config(), cwd=str(tmp_path))
        assert mixed == Author("Git User", "me@example.org")

    def test_fallbacks_without_git(self, tmp_path: Path) -> None:
        env = {"HOME": str(tmp_path), "PATH": str(tmp_path), "GIT_CONFIG_NOSYSTEM": "1"}
        assert resolve_author(env, Config(), cwd=str(tmp_path)) == Author("Author", "email@domain")

    def test_bad_author_is_a_user_error(self, tmp_path: Path) -> None:
        env = {"DEBFULLNAME": "Two\nLines", "DEBEMAIL": "x@example.org"}
        with pytest.raises(DockerPkgError, match="must be one non-empty line"):
            resolve_author(env, Config(), cwd=str(tmp_path))


class TestDate:
    """RFC 2822 like `date -R`: English names, zero-padded day, numeric offset."""

    @pytest.mark.parametrize(
        ("moment", "expected"),
        [
            (
                datetime.datetime(2026, 11, 26, 16, 53, 53, tzinfo=datetime.UTC),
                "Thu, 26 Nov 2026 16:53:53 +0000",
            ),
            (
                datetime.datetime(
                    2026,
                    3,
                    5,
                    7,
                    4,
                    9,
                    tzinfo=datetime.timezone(datetime.timedelta(hours=-5, minutes=-30)),
                ),
                "Thu, 05 Mar 2026 07:04:09 -0530",
            ),
            (
                datetime.datetime(
                    2026, 1, 1, 0, 0, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=1))
                ),
                "Thu, 01 Jan 2026 00:00:00 +0100",
            ),
        ],
    )
    def test_format(self, moment: datetime.datetime, expected: str) -> None:
        assert changelog_date(moment) == expected

    def test_naive_is_local_time(self) -> None:
        naive = datetime.datetime(2026, 11, 26, 12, 0, 0)
        assert changelog_date(naive) == changelog_date(naive.astimezone())
