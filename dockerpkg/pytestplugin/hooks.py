"""The hooks of a run that names a tree: collecting it, knowing what the run builds, the
summary of lint warnings, closing the test session whatever way the run ends."""

from __future__ import annotations

import os
from collections.abc import Generator
from pathlib import Path

import pytest

from dockerpkg.errors import DockerPkgError
from dockerpkg.pytestplugin import state as state_module
from dockerpkg.pytestplugin.items import WARNING_PROPERTY
from dockerpkg.pytestplugin.nodes import TreeNode
from dockerpkg.pytestplugin.options import TREE_KEY
from dockerpkg.pytestplugin.settings import read_settings
from dockerpkg.pytestplugin.state import STATE, PluginState

# What the test session says (leftovers it removed or could not), on the reports: under
# xdist the session is a worker's, and only reports reach the controller's summary.
SESSION_PROPERTY = "dockerpkg test session"


def start(config: pytest.Config) -> None:
    """Turn the plugin on for CONFIG's run: its state, its hooks, and the tree among what
    pytest collects."""
    settings = read_settings(config)
    if not settings.tree.is_dir():
        where = config.getoption("dockerpkg_tree") or config.getini(TREE_KEY)
        option = "--dockerpkg" if config.getoption("dockerpkg_tree") else TREE_KEY
        raise pytest.UsageError(f"{option} {where}: no such folder: the image tree is not there")
    # The run's environment, read once here, at the edge, as the command line reads it.
    state = PluginState(settings, os.environ, str(config.invocation_params.dir))
    config.stash[STATE] = state
    config.pluginmanager.register(_Hooks(state), "dockerpkg-hooks")
    if _adds_tree(config, settings.tree, settings.on_command_line):
        config.args.append(str(settings.tree))


def _arg_path(config: pytest.Config, arg: str) -> Path:
    # Absolute without following links, as pytest makes its arguments' paths.
    return Path(os.path.abspath(config.invocation_params.dir / arg.split("::", maxsplit=1)[0]))


def _adds_tree(config: pytest.Config, tree: Path, on_command_line: bool) -> bool:
    """Whether the tree must be added to pytest's arguments: --dockerpkg asks for it, and
    so does the ini key when no arguments were given (pytest then collects its testpaths or
    the current folder); not when an argument already holds the tree or lies in it."""
    given = config.args_source is pytest.Config.ArgsSource.ARGS
    if given and not on_command_line:
        return False
    for arg in config.args:
        path = _arg_path(config, arg)
        if path == tree or path in tree.parents or tree in path.parents:
            return False
    return True


_STATE_FILE = str(Path(state_module.__file__ or "").resolve())


def skip_location(item: pytest.Item) -> tuple[str, int]:
    """Where ITEM's skip is reported: the file a Docker item runs, a test's own line."""
    from dockerpkg.pytestplugin.dockeritems import DockerItem

    if isinstance(item, DockerItem):
        return item.skip_location()
    path, line, _ = item.location
    return path, (line or 0) + 1


class _Hooks:
    """The hooks, registered only for runs that name a tree."""

    def __init__(self, state: PluginState) -> None:
        self.state = state
        # The session's lines put on a report already (each goes on one), and those met on
        # reports (this run's, or an xdist worker's), for the summary.
        self._sent: set[str] = set()
        self._said: list[str] = []

    @pytest.hookimpl(tryfirst=True)
    def pytest_collect_directory(
        self, path: Path, parent: pytest.Collector
    ) -> pytest.Collector | None:
        if path == self.state.settings.tree:
            return TreeNode.from_parent(parent, path=path)
        return None

    def pytest_ignore_collect(self, collection_path: Path, config: pytest.Config) -> bool | None:
        """An image folder below the tree's other folders is a build context: pytest's own
        collection of those folders (see TreeNode) leaves it out."""
        tree = self.state.settings.tree
        if tree not in collection_path.parents:
            return None
        try:
            return True if collection_path in self.state.image_folders() else None
        except DockerPkgError:
            return None

    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        from dockerpkg.pytestplugin.wanted import wanted_images

        # An xdist worker holds every item but runs only those it is given: it builds, on
        # demand, the images of the items it runs (with their parents), each once.
        worker = hasattr(session.config, "workerinput")
        self.state.wanted = () if worker else wanted_images(session.items)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        for line in self.state.session_warnings():
            if line not in self._sent:
                self._sent.add(line)
                report.user_properties.append((SESSION_PROPERTY, line))
        longrepr = report.longrepr
        # A skip for want of Docker is raised in the plugin's state module: say it at the item.
        if (
            report.skipped
            and isinstance(longrepr, tuple)
            and str(Path(longrepr[0]).resolve()) == _STATE_FILE
        ):
            report.longrepr = (*skip_location(item), longrepr[2])
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        for key, value in report.user_properties:
            if key == SESSION_PROPERTY and str(value) not in self._said:
                self._said.append(str(value))
        if report.when != "call":
            return
        self.state.warnings.extend(
            str(value) for key, value in report.user_properties if key == WARNING_PROPERTY
        )

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        sections = (
            ("dockerpkg lint warnings", self.state.warnings),
            # And what the session said once no report was left (when it closed).
            (
                SESSION_PROPERTY,
                [*self._said, *(w for w in self.state.session_warnings() if w not in self._said)],
            ),
        )
        for title, lines in sections:
            if lines:
                terminalreporter.write_sep("=", title)
                for line in lines:
                    terminalreporter.write_line(line)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        self.state.close()

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        self.state.close()
