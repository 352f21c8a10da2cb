"""Registry references: guessed off changelog first lines, and those of a resolved tree."""

from __future__ import annotations

from pathlib import Path

from dockerpkg.core.config import load_config
from dockerpkg.core.registryrefs import guessed_refs, tree_refs
from dockerpkg.core.tree import analyze_tree
from dockerpkg.effects.tree import read_snapshot
from tests.support.updates import write_tree

CONFIG = "registry: registry.example.org:5000\nnamespace: team\n"


def test_guesses_match_the_resolved_tree(tmp_path: Path) -> None:
    write_tree(tmp_path, {"base": ("1.0", []), "app": ("2:2.1-1", ["base"])})
    config = load_config([("config.yaml", CONFIG)])
    snapshot = read_snapshot(tmp_path / "images")
    tree = analyze_tree(snapshot, config, "-20261126", render=False).tree
    assert tree is not None
    guesses = guessed_refs(snapshot, config, "-20261126")
    assert sorted(guesses) == sorted(tree_refs(tree, config).values())
    assert ("team/app", "2:2.1-1-20261126") in guesses  # the registry host is not part of it


def test_an_unusual_first_line_is_not_guessed(tmp_path: Path) -> None:
    write_tree(tmp_path, {"base": ("1.0", [])})
    changelog = tmp_path / "images" / "base" / "changelog"
    changelog.write_text("\n" + changelog.read_text(encoding="utf-8"), encoding="utf-8")
    config = load_config([("config.yaml", CONFIG)])
    assert guessed_refs(read_snapshot(tmp_path / "images"), config) == ()
