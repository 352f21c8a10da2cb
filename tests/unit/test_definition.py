"""Definition digests and Docker's .dockerignore rules (checked against docker-py's matcher)."""

from __future__ import annotations

from pathlib import Path

import pytest
from docker.utils.build import exclude_paths

from dockerpkg.core.config import load_config
from dockerpkg.core.definition import context_files, definitions, ignored, parse_dockerignore
from dockerpkg.core.tree import analyze_tree
from dockerpkg.effects.tree import read_snapshot
from tests.support.updates import write_tree

FILES = [
    "a.txt",
    "b.md",
    "docs/a.txt",
    "docs/deep/c.txt",
    "src/main.c",
    "src/test/x_test.c",
    "build/out.o",
    "build/keep.me",
    ".git/HEAD",
    "notes#1.txt",
    "x[1].txt",
]
PATTERNS = [
    ["*.txt"],
    ["**/*.txt"],
    ["docs"],
    ["docs/", "!docs/deep"],
    ["build", "!build/keep.me"],
    ["**", "!src"],
    ["src/**/x_*.c"],
    ["/a.txt", "# a comment", ""],
    [".git", "*.md", "!b.md"],
    ["?.txt"],
    ["[ab].*"],
    ["[!a].md"],
    ["docs/*/c.txt"],
    ["**/deep"],
    ["x\\[1\\].txt"],
]


@pytest.mark.parametrize("patterns", PATTERNS, ids="|".join)
def test_dockerignore_matches_docker_py(tmp_path: Path, patterns: list[str]) -> None:
    for name in FILES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name, encoding="utf-8")
    docker_excluded = exclude_paths(str(tmp_path), [p for p in patterns if p], dockerfile="none")
    sent = {f for f in FILES if f in docker_excluded}
    ours = parse_dockerignore("\n".join(patterns))
    assert {f for f in FILES if not ignored(f, ours)} == sent


def test_context_leaves_out_metadata_and_ignored_files() -> None:
    hashes = [("changelog", "1"), ("Dockerfile.template", "2"), ("run.sh", "3"), ("x.log", "4")]
    assert context_files(hashes, "*.log\n") == [("run.sh", "3")]


def _definitions(root: Path) -> tuple[dict[str, str | None], dict[str, str | None]]:
    config = load_config([("config.yaml", (root / "config.yaml").read_text(encoding="utf-8"))])
    tree = analyze_tree(read_snapshot(root / "images"), config).tree
    assert tree is not None
    found = definitions(tree)
    return dict(found.own), dict(found.full)


def test_what_changes_a_definition(tmp_path: Path) -> None:
    write_tree(tmp_path, {"base": ("1.0", []), "app": ("2.0", ["base"]), "other": ("1", [])})
    images = tmp_path / "images"
    (images / "base" / ".dockerignore").write_text("*.log\n", encoding="utf-8")
    own, full = _definitions(tmp_path)
    assert None not in own.values()
    assert None not in full.values()
    # A new changelog entry alone, or an ignored file, changes nothing.
    changelog = images / "base" / "changelog"
    changelog.write_text(changelog.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    (images / "base" / "debug.log").write_text("noise", encoding="utf-8")
    assert _definitions(tmp_path) == (own, full)
    # A context file changes base's own definition, and app's full one through base.
    (images / "base" / "data.txt").write_text("v1", encoding="utf-8")
    own2, full2 = _definitions(tmp_path)
    assert own2["base"] != own["base"]
    assert full2["base"] != full["base"]
    assert own2["app"] == own["app"]
    assert full2["app"] != full["app"]
    assert (own2["other"], full2["other"]) == (own["other"], full["other"])
    # So does the template.
    template = images / "other" / "Dockerfile.template"
    template.write_text(template.read_text(encoding="utf-8") + "RUN true\n", encoding="utf-8")
    own3, _ = _definitions(tmp_path)
    assert own3["other"] != own["other"]
