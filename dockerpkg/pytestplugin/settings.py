"""What a run asks of the plugin, read once from its options and ini keys."""

from __future__ import annotations

import os
from pathlib import Path

import attrs
import pytest

from dockerpkg.pytestplugin.options import (
    CHECK_TIMEOUT_KEY,
    CONFIG_KEY,
    DEFAULT_CHECK_TIMEOUT,
    TREE_KEY,
)


@attrs.frozen
class Settings:
    """The plugin's options, with the paths made absolute (made relative in messages only)."""

    tree: Path
    config_path: str | None
    # --dockerpkg on the command line: the tree is collected whatever else is given.
    on_command_line: bool
    build: bool
    require_docker: bool
    pull: bool = True
    use_cache: bool = True
    jobs: int | None = None
    keep_images: bool = False
    # Seconds a structure check's command may run (None: no bound).
    check_timeout: float | None = DEFAULT_CHECK_TIMEOUT


def _ini_folder(config: pytest.Config) -> Path:
    """Where ini values' relative paths start: the ini file's folder, else the rootdir."""
    return config.inipath.parent if config.inipath is not None else config.rootpath


def read_settings(config: pytest.Config) -> Settings:
    """The settings of CONFIG's run (which names a tree: see options.enabled)."""
    given = config.getoption("dockerpkg_tree")
    here = config.invocation_params.dir
    tree = here / given if given else _ini_folder(config) / str(config.getini(TREE_KEY))
    named = config.getoption("dockerpkg_config")
    ini = str(config.getini(CONFIG_KEY) or "")
    found = here / named if named else _ini_folder(config) / ini if ini else None
    # Absolute, so that a test changing folder cannot make it name another file; messages
    # name it relative (PluginState.shown).
    config_path = None if found is None else os.path.abspath(found)
    require = bool(config.getoption("dockerpkg_require_docker"))
    return Settings(
        # Absolute without following links: pytest's own paths, which it is compared with.
        tree=Path(os.path.abspath(tree)),
        config_path=config_path,
        on_command_line=bool(given),
        build=require or bool(config.getoption("dockerpkg_build")),
        require_docker=require,
        pull=not config.getoption("dockerpkg_no_pull"),
        use_cache=not config.getoption("dockerpkg_no_cache"),
        jobs=config.getoption("dockerpkg_jobs"),
        keep_images=bool(config.getoption("dockerpkg_keep_images")),
        check_timeout=_check_timeout(config),
    )


def _check_timeout(config: pytest.Config) -> float | None:
    """--dockerpkg-check-timeout, else the ini key, else the default; 0: no bound."""
    given = config.getoption("dockerpkg_check_timeout")
    text = str(config.getini(CHECK_TIMEOUT_KEY) or "") if given is None else given
    if not text:
        return DEFAULT_CHECK_TIMEOUT
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:  # also NaN
        option = "--dockerpkg-check-timeout" if given is not None else CHECK_TIMEOUT_KEY
        raise pytest.UsageError(f"{option} {text}: not a number of seconds (0: no bound)")
    return seconds or None
