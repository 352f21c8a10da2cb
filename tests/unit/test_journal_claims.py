"""Journals found in a tree and saved update plans are claims: recovery finishes only edits
dockerpkg derives itself (a tag or digest moved to a version the tree names, an entry at the
top of one of the tree's own changelogs), in files inside the tree or given on this run's
command line; anything else is refused, files untouched, saying how to discard the journal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import pytest

from dockerpkg.cli import main
from dockerpkg.core.changelog import Author, entry
from dockerpkg.core.editmatch import entry_problem, reference_edits_problem
from dockerpkg.core.refsplan import TreeFacts, file_digest
from dockerpkg.effects.workfiles import JOURNAL_NAME, REFS_JOURNAL
from tests.support.updates import write_tree

REGISTRY = "registry.example.org"
CONFIG = f"registry: {REGISTRY}\nnamespace: team\n"
FACTS = TreeFacts(
    prefixes=(f"{REGISTRY}/team", "team"),
    current={"app": "1.1", "base": "2.0"},
    versions={"app": frozenset({"1.0", "1.1"}), "base": frozenset({"2.0"})},
)
AUTHOR = Author("Jane Doe", "jane@example.org")
DATE = "Mon, 07 Dec 2026 10:00:00 +0000"
PLAN_UPDATE = ("-c", "config.yaml", "plan", "update", "base", "images", "--out", "p.json")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out + err


def refs_journal(tree: Path, *files: tuple[Path, list[tuple[int, int, str]]]) -> Path:
    """A refs journal in TREE asking for EDITS of each file (with the digests right)."""
    body = {
        "format": 1,
        "files": [
            {
                "shown": str(path),
                "path": str(path),
                "before": file_digest(path.read_bytes()),
                "after": "sha256:" + "0" * 64,
                "staged": "",
                "edits": [list(e) for e in edits],
            }
            for path, edits in files
        ],
    }
    journal = tree / REFS_JOURNAL
    journal.write_text(json.dumps(body), "utf-8")
    return journal


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    write_tree(tmp_path / "work", {"base": ("2.0", []), "app": ("1.1", ["base"])}, CONFIG)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return tmp_path


class TestRefsJournal:
    def test_a_file_of_the_current_folder_is_not_edited(
        self, root: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """`refs` run from the home folder: a journal in the tree must not change ~/.bashrc."""
        bashrc = root / "home" / ".bashrc"
        bashrc.write_text("alias ll='ls -alF'\n", "utf-8")
        tree = root / "work" / "images"
        journal = refs_journal(tree, (bashrc, [(10, 12, "rm")]))
        monkeypatch.chdir(root / "home")
        config = str(root / "work" / "config.yaml")
        status, output = run(capsys, "-c", config, "refs", str(tree), str(root / "work"))
        assert status == 1
        assert bashrc.read_text("utf-8") == "alias ll='ls -alF'\n"
        assert f"to discard the journal, remove {journal}" in output
        assert "outside the tree and the folders given on the command line" in output
        assert journal.exists()

    def test_a_word_of_a_tree_file_is_not_replaced(
        self, root: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        tree = root / "work" / "images"
        template = tree / "app" / "Dockerfile.template"
        template.write_text("FROM scratch\nRUN echo hi\n", "utf-8")
        start = template.read_text("utf-8").index("echo")
        journal = refs_journal(tree, (template, [(start, start + 4, "reboot")]))
        monkeypatch.chdir(root / "work")
        status, output = run(capsys, "-c", "config.yaml", "refs", "images", "images")
        assert status == 1
        assert template.read_text("utf-8") == "FROM scratch\nRUN echo hi\n"
        assert "'echo' at offset" in output
        assert "not in a reference to an image of the tree" in output
        assert f"to discard the journal, remove {journal.relative_to(root / 'work')}" in output

    def test_a_move_the_tree_derives_is_finished(
        self, root: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        uses = root / "work" / "uses"
        uses.mkdir()
        job = uses / "job.yml"
        job.write_text(f"image: {REGISTRY}/team/app:1.0\n", "utf-8")
        start = job.read_text("utf-8").index("1.0")
        refs_journal(root / "work" / "images", (job, [(start, start + 3, "1.1")]))
        monkeypatch.chdir(root / "work")
        status, output = run(capsys, "-c", "config.yaml", "refs", "images", "uses")
        assert status == 0, output
        assert job.read_text("utf-8") == f"image: {REGISTRY}/team/app:1.1\n"
        assert "an interrupted refs --apply was finished" in output

    def test_an_entry_with_trailing_text_in_another_images_changelog(
        self, root: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        tree = root / "work" / "images"
        changelog = tree / "app" / "changelog"
        before = changelog.read_text("utf-8")
        text = entry(
            name="base", version="2.1", distribution="d", reason="r", author=AUTHOR, date=DATE
        )
        refs_journal(tree, (changelog, [(0, 0, text + "RUN evil\n")]))
        monkeypatch.chdir(root / "work")
        status, output = run(capsys, "-c", "config.yaml", "refs", "images", "images")
        assert status == 1
        assert "not one changelog entry as update writes it (or text follows it)" in output
        assert changelog.read_text("utf-8") == before


class TestUpdateJournal:
    def test_resume_refuses_an_entry_update_would_not_write(
        self, root: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        tree = root / "work" / "images"
        changelog = tree / "app" / "changelog"
        before = changelog.read_bytes()
        text = entry(
            name="base", version="2.1", distribution="d", reason="r", author=AUTHOR, date=DATE
        )
        body = {
            "format": 1,
            "changelogs": [
                {
                    "path": "app/changelog",
                    "entry": text,
                    "before": file_digest(before),
                    "after": file_digest(text.encode() + before),
                }
            ],
        }
        (tree / JOURNAL_NAME).write_text(json.dumps(body), "utf-8")
        monkeypatch.chdir(root / "work")
        status, output = run(capsys, "-c", "config.yaml", "update", "--resume", "images")
        assert status == 1
        assert "an entry for base in the changelog of app" in output
        assert f"remove {JOURNAL_NAME}" in output
        assert changelog.read_bytes() == before


def saved_update_plan(
    root: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    """The update plan `plan update --out p.json` saves from ROOT's work folder, as JSON."""
    monkeypatch.setenv("DEBFULLNAME", "Jane Doe")
    monkeypatch.setenv("DEBEMAIL", "jane@example.org")
    monkeypatch.chdir(root / "work")
    assert run(capsys, *PLAN_UPDATE)[0] == 0
    return cast("dict[str, Any]", json.loads(Path("p.json").read_text("utf-8")))


class TestSavedUpdatePlan:
    def test_an_entry_moved_to_another_images_changelog(
        self, root: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        data = saved_update_plan(root, capsys, monkeypatch)
        edit = next(e for e in data["edits"] if e["image"] == "base")
        edit["path"] = "app/changelog"
        edit["entry"] += "trailing text\n"
        data["edits"] = [edit]
        Path("p.json").write_text(json.dumps(data), "utf-8")
        before = {p: p.read_bytes() for p in Path("images").rglob("changelog")}
        status, output = run(capsys, "-c", "config.yaml", "apply", "p.json")
        assert status == 1
        assert "app/changelog:1: error: not a plan dockerpkg made: an entry for base in" in output
        assert {p: p.read_bytes() for p in Path("images").rglob("changelog")} == before

    def test_trailing_text_in_its_own_changelog(
        self, root: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        data = saved_update_plan(root, capsys, monkeypatch)
        for edit in data["edits"]:
            edit["entry"] += "base (0.1) d; urgency=high\n"
        Path("p.json").write_text(json.dumps(data), "utf-8")
        status, output = run(capsys, "-c", "config.yaml", "apply", "p.json")
        assert status == 1
        assert "base/changelog:1: error: not a plan dockerpkg made: not one changelog entry" in (
            output
        )
        # The plan as made is written.
        assert run(capsys, *PLAN_UPDATE)[0] == 0
        assert run(capsys, "-c", "config.yaml", "apply", "p.json")[0] == 0


class TestRules:
    """The pure rules, case by case."""

    def test_entries(self) -> None:
        old = "app (1.1) d; urgency=high\n\n   x\n\n -- A <a@b>  " + DATE + "\n"
        good = entry(
            name="app", version="1.2", distribution="d", reason="r\n\ns", author=AUTHOR, date=DATE
        )
        assert entry_problem(good, old) is None
        assert entry_problem(good + "x", old) is not None
        assert "not above" in (entry_problem(good.replace("1.2", "1.0"), old) or "")
        assert "an entry for base" in (entry_problem(good.replace("app (", "base ("), old) or "")

    def test_references(self) -> None:
        text = f"a: {REGISTRY}/team/app:1.0\nb: echo {REGISTRY}/team/base@sha256:{'c' * 64}\n"
        tag = text.index("1.0")
        assert reference_edits_problem("f", text, [(tag, tag + 3, "1.1")], FACTS) is None
        assert reference_edits_problem("f", text, [(tag, tag + 3, "1.2")], FACTS) is not None
        word = text.index("echo")
        assert reference_edits_problem("f", text, [(word, word + 4, "rm")], FACTS) is not None
        digest = text.index("sha256:")
        new = "sha256:" + "d" * 64
        assert reference_edits_problem("f", text, [(digest, digest + 71, new)], FACTS) is None


class TestHostileJournalFiles:
    """A journal nested without end is an error naming it, not a RecursionError."""

    @pytest.mark.parametrize("name", [JOURNAL_NAME, REFS_JOURNAL])
    def test_deeply_nested(
        self,
        name: str,
        root: Path,
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        (root / "work" / "images" / name).write_text("[" * 100_000 + "]" * 100_000, "utf-8")
        monkeypatch.chdir(root / "work")
        status, output = run(capsys, "-c", "config.yaml", "refs", "images", "images")
        assert status == 1
        assert f"{name}: error:" in output
        assert "Recursion" not in output


def test_a_refs_journal_naming_a_path_with_a_nul(
    root: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = root / "work" / "images"
    body = {"format": 1, "files": [{"shown": "a", "path": "/tmp/a\x00b", "before": "x",
                                    "after": "y", "edits": []}]}  # fmt: skip
    (tree / REFS_JOURNAL).write_text(json.dumps(body), "utf-8")
    monkeypatch.chdir(root / "work")
    status, output = run(capsys, "-c", "config.yaml", "refs", "images", "images")
    assert status == 1
    assert "a path with a NUL character" in output
