"""Links in image folders, on a tree shaped like the long-lived ones kept with docker-pkg.

fixtures/compat/16-shared-links shares files the way such trees do: fpm images link folders of
a `common/` folder (which holds a link of its own), build images link `../run.sh`, an image
links its sibling's files, and an image links a script from `jjb/`, a folder beside the tree
inside the same repository. Each test works on a copy in a temporary folder marked as a
repository (a `.git` folder at the case's root), as a checkout of such a tree would be.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from dockerpkg.cli import main
from dockerpkg.core.plan import PlannedImage
from dockerpkg.core.serialize import plan_from_json
from dockerpkg.effects.buildcontext import build_context
from dockerpkg.effects.links import Entry, LinkPolicy, copy_context, repository_root
from dockerpkg.effects.tasks import TaskFailedError
from dockerpkg.effects.tree import read_snapshot
from tests.support.compat import COMPAT

CASE = COMPAT / "16-shared-links"
FPM = ("php7.4-fpm", "php8.1-fpm")


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A checkout holding the case: config.yaml, jjb/ and the tree images/; the current folder."""
    root = tmp_path / "repo"
    shutil.copytree(CASE, root, symlinks=True)
    (root / ".git").mkdir()
    monkeypatch.chdir(root)
    monkeypatch.setenv("DEBFULLNAME", "Release Bot")
    monkeypatch.setenv("DEBEMAIL", "bot@example.org")
    return root


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(["-c", "config.yaml", *argv])
    out, err = capsys.readouterr()
    return status, out, err


def own_definitions(capsys: pytest.CaptureFixture[str], out: str | None = None) -> dict[str, str]:
    args = ("plan", "--offline", "--json", *(("--out", out) if out else ()), "images")
    status, text, err = run(capsys, *args)
    assert status == 0, err
    return {i["name"]: i["own_definition"] for i in json.loads(text)["images"]}


class TestWhereLinksLead:
    """Inside the tree and inside its repository: followed. Anywhere else: refused at plan
    time, naming the link, where it leads and the key that would allow it."""

    def test_repository_root(self, repo: Path) -> None:
        assert repository_root(str(repo / "images" / "php")) == str(repo)
        (repo / ".git").rmdir()
        (repo / ".git").write_text("gitdir: /elsewhere/.git/worktrees/x\n")  # a worktree
        assert repository_root(str(repo / "images")) == str(repo)
        (repo / ".git").unlink()
        # No repository: the tree itself bounds the links.
        assert repository_root(str(repo / "images")) in (str(repo / "images"), "/")

    def test_the_case_plans(self, repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
        status, out, err = run(capsys, "plan", "--offline", "images")
        assert (status, err) == (0, "")
        assert out.startswith("pull ") or out.startswith("build ")

    def test_linked_content_is_in_the_snapshot(self, repo: Path) -> None:
        snapshot = read_snapshot("images", LinkPolicy.for_tree("images"))
        images = {image.path: image for image in snapshot.images}
        fpm = images["php/7.4/fpm"]
        # A linked folder, a link inside it, a linked file: content under the link's names.
        assert {"test/test.sh", "test/lib.sh", "monitoring/check.sh", "test.sh"} <= fpm.names
        assert dict(fpm.files)["test/lib.sh"] == "check_fpm() {\n    php-fpm -t\n}\n"
        assert "run-tests.sh" in images["ci"].names  # from jjb/, beside the tree
        assert (
            dict(images["envoy-future"].files)["envoy.yaml"]
            == dict(images["envoy"].files)["envoy.yaml"]
        )

    def test_absolute_link_inside_the_repository(
        self, repo: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        link = repo / "images" / "ci" / "run-tests.sh"
        link.unlink()
        link.symlink_to(repo / "jjb" / "run-tests.sh")
        status, _, err = run(capsys, "plan", "--offline", "images")
        assert (status, err) == (0, "")

    @pytest.mark.parametrize(
        ("target", "expect"),
        [
            (
                "../../../outside.sh",
                "symlink to '../../../outside.sh' leads outside the repository",
            ),
            ("/etc/passwd", "symlink to '/etc/passwd' leads outside the repository"),
            ("../../config.yaml", "symlink to '../../config.yaml' leads to what may hold"),
            ("../../jjb/gone.sh", "symlink to missing '../../jjb/gone.sh'"),
            ("run-tests.sh", "symlink loop: 'run-tests.sh' leads back to itself"),
            ("../../jjb/pipe", "symlink to '../../jjb/pipe' leads to something that is not"),
            ("..", "symlink loop: '..' is a folder holding the link"),
        ],
        ids=["past-the-repository", "absolute", "config-file", "dangling", "loop", "fifo", "up"],
    )
    def test_refused(
        self, repo: Path, capsys: pytest.CaptureFixture[str], target: str, expect: str
    ) -> None:
        (repo.parent / "outside.sh").write_text("#!/bin/sh\n")
        os.mkfifo(repo / "jjb" / "pipe")
        link = repo / "images" / "ci" / "run-tests.sh"
        link.unlink()
        link.symlink_to(target)
        for argv in (("plan", "--offline", "images"), ("lint", "images")):
            status, out, err = run(capsys, *argv)
            assert status == 1
            assert f"ci/run-tests.sh: error: {expect}" in err
            assert "Traceback" not in out + err
        assert os.readlink(link) == target

    def test_refusal_names_the_key_that_allows_it(
        self, repo: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        (repo.parent / "shared").mkdir()
        (repo.parent / "shared" / "run-tests.sh").write_text("#!/bin/sh\n")
        link = repo / "images" / "ci" / "run-tests.sh"
        link.unlink()
        link.symlink_to("../../../shared/run-tests.sh")
        status, _, err = run(capsys, "plan", "--offline", "images")
        assert status == 1
        assert f"({repo}): links are followed only inside it, or inside a folder listed " in err
        assert "under 'context_roots' in the config" in err
        # The key, relative to the config file naming it, lets the link through.
        config = repo / "config.yaml"
        config.write_text(config.read_text() + "context_roots:\n  - ../shared\n")
        status, _, err = run(capsys, "plan", "--offline", "images")
        assert (status, err) == (0, "")
        assert "run-tests.sh" in {
            n
            for i in read_snapshot(
                "images", LinkPolicy.for_tree("images", [str(repo.parent)])
            ).images
            if i.path == "ci"
            for n in i.names
        }

    def test_no_repository_bounds_links_by_the_tree(
        self, repo: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        (repo / ".git").rmdir()
        if repository_root("images") != os.path.realpath("images"):
            pytest.skip("the temporary folder is inside a repository")
        status, _, err = run(capsys, "plan", "--offline", "images")
        assert status == 1
        assert "ci/run-tests.sh: error: symlink to '../../jjb/run-tests.sh' leads outside" in err


class TestDefinitionsCoverLinkedContent:
    def test_a_shared_file_changes_exactly_the_images_linking_it(
        self, repo: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        before = own_definitions(capsys, "before.json")
        lib = repo / "images" / "common" / "lib" / "lib.sh"  # reached through a linked folder
        lib.write_text(lib.read_text() + "check_pool() { true; }\n")
        after = own_definitions(capsys, "after.json")
        assert sorted(n for n in before if before[n] != after[n]) == sorted(FPM)
        status, out, _ = run(capsys, "diff", "before.json", "after.json")
        assert status == 2
        flagged = {line.split()[1] for line in out.splitlines() if line.startswith("definition")}
        assert flagged == set(FPM)
        status, _, err = run(capsys, "apply", "before.json")
        assert status == 1
        assert "stale plan" in err

    def test_a_sibling_file_changes_both_images(
        self, repo: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        before = own_definitions(capsys)
        (repo / "images" / "envoy" / "envoy.yaml").write_text("admin: {}\n")
        after = own_definitions(capsys)
        assert sorted(n for n in before if before[n] != after[n]) == ["envoy", "envoy-future"]

    def test_a_file_beside_the_tree(self, repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
        before = own_definitions(capsys)
        (repo / "jjb" / "run-tests.sh").write_text("#!/bin/sh\nexec tox\n")
        after = own_definitions(capsys)
        assert sorted(n for n in before if before[n] != after[n]) == ["ci"]


class TestAsANewUser:
    """Every command on the tree as it is: the result first, exit 0, at most one line (the
    count of the tree's style warnings) on stderr."""

    @pytest.fixture
    def messy(self, repo: Path) -> Path:
        # A dependency used through image_tag but not declared, as real trees have.
        (repo / "images" / "ci" / "control").unlink()
        return repo

    @pytest.mark.parametrize(
        "argv",
        [
            ("plan", "--offline", "images"),
            ("plan", "--offline", "--json", "images"),
            ("lint", "images"),
            ("graph", "images"),
            ("update", "python-build-bookworm", "images"),
        ],
        ids=["plan", "plan-json", "lint", "graph", "update"],
    )
    def test_command(
        self, messy: Path, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]
    ) -> None:
        status, out, err = run(capsys, *argv)
        assert status == 0, err
        assert out
        lines = err.splitlines()
        if argv[0] == "lint":
            assert lines == []
            assert "[undeclared-dependency]" in out
            assert "[changelog-order]" not in out
        elif argv[0] == "update":
            assert lines[0] == (
                "1 warning about the tree: dockerpkg lint images lists them "
                "(--info shows them here)"
            )
            assert "warning" not in "".join(lines[1:])
        else:
            assert lines == [
                "1 warning about the tree: dockerpkg lint images lists them "
                "(--info shows them here)"
            ]


class TestTheContextSentIsThePlanned:
    """apply hashes each build context as it copies it and compares that with the plan's
    definition of the image: what the plan covered is what the daemon gets."""

    @staticmethod
    def planned(repo: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, PlannedImage]:
        own_definitions(capsys, "plan.json")
        plan = plan_from_json((repo / "plan.json").read_text(encoding="utf-8"), "plan.json")
        return {image.name: image for image in plan.images}

    @staticmethod
    def copy(repo: Path, image: PlannedImage) -> None:
        policy = LinkPolicy.for_tree(str(repo / "images"))
        with build_context(repo / "images", image.path, image.name, policy, image) as context:
            assert (context / "Dockerfile.template").exists()

    def test_every_context_of_the_case_is_its_plan(
        self, repo: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        envoy = repo / "images" / "envoy"
        # What the definition leaves out is left out of the check too: an ignored file, and an
        # image folder nested in this one (its files are that image's, though sent with this).
        (envoy / ".dockerignore").write_text("*.md\n")
        (envoy / "NOTES.md").write_text("notes\n")
        (envoy / "inner").mkdir()
        (envoy / "inner" / "Dockerfile.template").write_text("FROM scratch\n")
        (envoy / "inner" / "changelog").write_text(
            (envoy / "changelog").read_text().replace("envoy ", "envoy-inner ", 1)
        )
        images = self.planned(repo, capsys)
        assert "envoy-inner" in images
        for image in images.values():
            self.copy(repo, image)
        # A change the definition leaves out is no difference.
        (envoy / "NOTES.md").write_text("other notes\n")
        (envoy / "inner" / "Dockerfile.template").write_text("FROM busybox\n")
        self.copy(repo, images["envoy"])

    def test_a_link_retargeted_after_planning_fails_that_image(
        self, repo: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        images = self.planned(repo, capsys)
        link = repo / "images" / "envoy-future" / "envoy.yaml"
        link.unlink()
        link.symlink_to("../../jjb/run-tests.sh")  # inside the repository: allowed, other content
        with pytest.raises(TaskFailedError) as info:
            self.copy(repo, images["envoy-future"])
        message = str(info.value)
        assert message.startswith(
            "the build context is not the one planned: the files of envoy-future changed after "
            "planning (a file edited, or a link retargeted); its definition is now sha256:"
        )
        planned = images["envoy-future"].own_definition
        assert planned is not None
        assert f"the plan's {planned[:19]}" in message
        # The other images are what their plan says.
        self.copy(repo, images["envoy"])
        self.copy(repo, images["ci"])

    def test_a_file_made_a_fifo_after_the_walk_is_refused_not_waited_on(
        self, tmp_path: Path
    ) -> None:
        fifo = tmp_path / "was-a-file"
        os.mkfifo(fifo)
        (tmp_path / "out").mkdir()
        with pytest.raises(OSError, match="no longer a regular file"):
            copy_context([Entry("file", str(fifo), folder=False)], str(tmp_path / "out"))
