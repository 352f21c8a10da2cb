"""What the plugin keeps for one pytest run: its settings, the environment read once, the
tree's one reading (or why it cannot be read), whether Docker answers, and the test session
that builds (created on first use, closed when the run ends)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from dockerpkg.api.review import review_tree
from dockerpkg.errors import DockerPkgError
from dockerpkg.pytestplugin.settings import Settings
from dockerpkg.pytestplugin.treeview import TreeView, tree_view

if TYPE_CHECKING:
    from dockerpkg.pytestplugin.sessionbuilds import SessionBuilds

# What ends a path in a message: a separator, the end, or a character no file name
# written in a message holds (a quote, a colon, a space).
_PATH_END = r"(?=[/\\\s:'\"),\]]|$)"

OFF = (
    "the dockerpkg plugin is off: name a tree with --dockerpkg DIRECTORY or the "
    "dockerpkg_tree ini key"
)


class PluginState:
    """One run's state (kept in its config's stash: nothing global)."""

    def __init__(self, settings: Settings, env: Mapping[str, str], here: str) -> None:
        self.settings = settings
        self.env = dict(env)
        # Absolute paths -> as messages name them (relative to HERE, where pytest started),
        # worked out once: a test may change folder, the paths used stay absolute.
        paths = [str(settings.tree), settings.config_path]
        self._relative = sorted(
            ((p, os.path.relpath(p, here)) for p in paths if p is not None),
            key=lambda pair: -len(pair[0]),
        )
        self._view: TreeView | DockerPkgError | None = None
        self._folders: frozenset[Path] | None = None
        self._daemon: tuple[str | None] | None = None
        # Images whose Docker items (or dockerpkg_image parameters) the run holds once
        # collected and deselected: the first build builds them all, in one run.
        self.wanted: tuple[str, ...] = ()
        # What the lint items warned of (from their reports), for the terminal summary.
        self.warnings: list[str] = []
        self._builds: SessionBuilds | None = None

    @property
    def directory(self) -> str:
        """The tree's absolute path (messages name it relative: see shown)."""
        return str(self.settings.tree)

    def shown(self, text: str) -> str:
        """TEXT (a message) with the tree's and the config's absolute paths made relative."""
        for absolute, relative in self._relative:
            # Whole paths only: not the start of a sibling's name (tree-config.yaml).
            text = re.sub(re.escape(absolute) + _PATH_END, relative.replace("\\", r"\\"), text)
        return text

    def view(self) -> TreeView:
        """The tree read, rendered and linted: once per run, whoever asks first."""
        if self._view is None:
            try:
                review = review_tree(self.directory, self.settings.config_path, self.env)
                self._view = tree_view(review)
            except DockerPkgError as exc:
                self._view = exc
        if isinstance(self._view, DockerPkgError):
            raise self._view
        return self._view

    def image_folders(self) -> frozenset[Path]:
        """The image folders' absolute paths (build contexts, not the user's tests)."""
        if self._folders is None:
            tree = self.settings.tree
            self._folders = frozenset(
                tree if i.folder == "." else tree / i.folder for i in self.view().images
            )
        return self._folders

    def daemon_problem(self) -> str | None:
        """Why Docker cannot be used (asked once per run), or None."""
        if self._daemon is None:
            # Loaded on first use: Docker's client is no part of a collection.
            from dockerpkg.api.daemoncheck import daemon_problem

            self._daemon = (daemon_problem(self.env),)
        return self._daemon[0]

    def need_docker(self) -> None:
        """Skip the calling item or test (fail it, with --dockerpkg-require-docker) unless
        the run builds and the daemon answers."""
        if not self.settings.build:
            pytest.skip("needs Docker: --dockerpkg-build runs it")
        problem = self.daemon_problem()
        if problem is not None:
            if self.settings.require_docker:
                pytest.fail(f"{problem} (--dockerpkg-require-docker)", pytrace=False)
            pytest.skip(problem)

    def builds(self) -> SessionBuilds:
        """The run's builds (the test session starts with the first build)."""
        if self._builds is None:
            # Loaded on first use: Docker's client is no part of a collection.
            from dockerpkg.pytestplugin.sessionbuilds import SessionBuilds

            self._builds = SessionBuilds(
                self.directory, self.settings, self.env, self._want, self._unplanned
            )
        return self._builds

    def _want(self) -> tuple[str, ...]:
        return self.wanted

    def _unplanned(self) -> tuple[str, ...]:
        """The images that do not render (the tree then does not plan)."""
        return tuple(i.name for i in self.view().images if i.errors)

    def session_warnings(self) -> list[str]:
        """What the test session asks to say (leftovers of dead sessions it removed)."""
        return [] if self._builds is None else self._builds.warnings

    def close(self) -> None:
        """End the run's test session, if one was started (idempotent)."""
        if self._builds is not None:
            self._builds.close()


STATE = pytest.StashKey[PluginState]()


def state_of(config: pytest.Config) -> PluginState:
    """CONFIG's run state; fails the caller (a fixture, a collector) when the plugin is off."""
    state = config.stash.get(STATE, None)
    if state is None:
        pytest.fail(OFF, pytrace=False)
    return state
