"""The pytest plugin's test trees: the bundled three-image tree copied where a pytester run
(or a test of its own) can change it."""

from __future__ import annotations

import shutil
from pathlib import Path

# pytester's in-process runs drop, when they end, the modules imported during them: the
# plugin's modules (and the library's they import) are imported here first, so the tests of
# one process share one copy of each (an enum of a second copy never equals the first's).
import dockerpkg.api.daemoncheck
import dockerpkg.pytestplugin.fixtures
import dockerpkg.pytestplugin.hooks
import dockerpkg.pytestplugin.sessionbuilds  # noqa: F401

PLUGIN_TREE = Path(__file__).resolve().parents[2] / "fixtures" / "trees" / "plugin"
IMAGES = ("plugin-base", "plugin-child-a", "plugin-child-b")


def copy_tree(where: Path) -> Path:
    """A copy of the plugin tree at WHERE/tree, with its config at WHERE/tree-config.yaml;
    returns WHERE/tree."""
    tree = where / "tree"
    shutil.copytree(PLUGIN_TREE / "images", tree)
    shutil.copy(PLUGIN_TREE / "config.yaml", where / "tree-config.yaml")
    return tree
