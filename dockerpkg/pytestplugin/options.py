"""The plugin's command-line options and ini keys, and whether a run turned it on."""

from __future__ import annotations

import pytest

# The ini keys naming the tree and the config file, relative to the ini file's folder.
TREE_KEY = "dockerpkg_tree"
CONFIG_KEY = "dockerpkg_config"
# Seconds a structure check's command may run: one that never ends must not hang the run.
CHECK_TIMEOUT_KEY = "dockerpkg_check_timeout"
DEFAULT_CHECK_TIMEOUT = 300.0


def add_options(parser: pytest.Parser) -> None:
    """Add the plugin's options and ini keys to PARSER."""
    group = parser.getgroup("dockerpkg", "dockerpkg: test an image tree")
    group.addoption(
        "--dockerpkg",
        metavar="DIRECTORY",
        dest="dockerpkg_tree",
        default=None,
        help="collect the image tree in DIRECTORY: render and lint items for every image "
        "(and, with --dockerpkg-build, its Docker items)",
    )
    group.addoption(
        "--dockerpkg-config",
        metavar="FILE",
        dest="dockerpkg_config",
        default=None,
        help="the tree's config file (default: as the dockerpkg command reads it)",
    )
    group.addoption(
        "--dockerpkg-build",
        action="store_true",
        dest="dockerpkg_build",
        help="collect and run the Docker items: build the images (with their parents, in one "
        "run), their test.sh and their structure checks; skipped when Docker does not answer",
    )
    group.addoption(
        "--dockerpkg-require-docker",
        action="store_true",
        dest="dockerpkg_require_docker",
        help="implies --dockerpkg-build; a daemon that cannot be reached fails the Docker "
        "items instead of skipping them (for CI)",
    )
    group.addoption(
        "--dockerpkg-no-pull",
        action="store_true",
        dest="dockerpkg_no_pull",
        help="do not pull base images before building (as build --no-pull)",
    )
    group.addoption(
        "--dockerpkg-no-cache",
        action="store_true",
        dest="dockerpkg_no_cache",
        help="build without the daemon's layer cache",
    )
    group.addoption(
        "--dockerpkg-jobs",
        metavar="N",
        type=int,
        dest="dockerpkg_jobs",
        default=None,
        help="images built at once (default: as build chooses)",
    )
    group.addoption(
        "--dockerpkg-keep-images",
        action="store_true",
        dest="dockerpkg_keep_images",
        help="keep the images the session built (their session tags) when it ends",
    )
    group.addoption(
        "--dockerpkg-check-timeout",
        metavar="SECONDS",
        dest="dockerpkg_check_timeout",
        default=None,
        help=f"seconds a structure check's command may run before the check fails "
        f"(default: {DEFAULT_CHECK_TIMEOUT:g}; 0: no bound)",
    )
    parser.addini(TREE_KEY, "the image tree to collect (as --dockerpkg)", default="")
    parser.addini(CONFIG_KEY, "the tree's config file (as --dockerpkg-config)", default="")
    parser.addini(CHECK_TIMEOUT_KEY, "as --dockerpkg-check-timeout", default="")


def enabled(config: pytest.Config) -> bool:
    """Whether the run names a tree: the plugin does nothing otherwise."""
    return bool(config.getoption("dockerpkg_tree") or config.getini(TREE_KEY))
