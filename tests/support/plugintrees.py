"""The pytest plugin's test trees: the bundled three-image tree copied where a pytester run
(or a test of its own) can change it."""

from __future__ import annotations

import shutil
from pathlib import Path

PLUGIN_TREE = Path(__file__).resolve().parents[2] / "fixtures" / "trees" / "plugin"
IMAGES = ("plugin-base", "plugin-child-a", "plugin-child-b")


def copy_tree(where: Path) -> Path:
    """A copy of the plugin tree at WHERE/tree, with its config at WHERE/tree-config.yaml;
    returns WHERE/tree."""
    tree = where / "tree"
    shutil.copytree(PLUGIN_TREE / "images", tree)
    shutil.copy(PLUGIN_TREE / "config.yaml", where / "tree-config.yaml")
    return tree
