"""What the plugin's fixtures give: the tree and its config, the offline plan, the rendered
Dockerfiles, handles on built images; and the parametrization over images."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, NamedTuple, NoReturn

import attrs
import pytest

from dockerpkg.api.workspace import build_plan, load_workspace
from dockerpkg.core.config import Config
from dockerpkg.core.plan import Plan
from dockerpkg.core.tree import Tree
from dockerpkg.errors import DockerPkgError
from dockerpkg.pytestplugin.state import state_of
from dockerpkg.pytestplugin.treeview import TreeView
from dockerpkg.pytestplugin.wanted import IMAGE_ARGUMENT

if TYPE_CHECKING:
    from dockerpkg.api.imagetests import ImageConfig, ImageProbe


@attrs.frozen
class LoadedTree:
    """The tree (labels, rendered Dockerfiles, build order) and its config."""

    directory: str
    config_path: str | None
    config: Config
    tree: Tree


def _failed(config: pytest.Config, exc: DockerPkgError | str) -> NoReturn:
    pytest.fail(state_of(config).shown(str(exc)), pytrace=False)


def _view(config: pytest.Config) -> TreeView:
    try:
        return state_of(config).view()
    except DockerPkgError as exc:
        _failed(config, exc)


def loaded_tree(config: pytest.Config) -> LoadedTree:
    """The tree of CONFIG's run; fails with dockerpkg's messages when it does not resolve."""
    view = _view(config)
    review = view.review
    if review.analysis.tree is None:
        _failed(config, DockerPkgError(review.analysis.problems))
    state = state_of(config)
    return LoadedTree(state.directory, state.settings.config_path, review.config,
                      review.analysis.tree)  # fmt: skip


def offline_plan(config: pytest.Config) -> Plan:
    """The offline build plan of CONFIG's tree, as `dockerpkg plan --offline` makes it."""
    state = state_of(config)
    try:
        workspace = load_workspace(state.directory, state.settings.config_path, state.env)
        return build_plan(workspace)
    except DockerPkgError as exc:
        _failed(config, exc)


def rendered_dockerfiles(config: pytest.Config) -> Mapping[str, str]:
    return MappingProxyType(_view(config).rendered())


def parametrize_images(metafunc: pytest.Metafunc, marker: pytest.Mark) -> None:
    """Parametrize METAFUNC's test over the images MARKER's glob matches (all by default)."""
    pattern = str(marker.args[0]) if marker.args else str(marker.kwargs.get("pattern", "*"))
    argument = str(marker.kwargs.get("argname", IMAGE_ARGUMENT))
    names = [i.name for i in _view(metafunc.config).images if fnmatch.fnmatchcase(i.name, pattern)]
    metafunc.parametrize(argument, names, ids=names)


class RunOutcome(NamedTuple):
    """What a command run in a throwaway container of the image gave."""

    exit_code: int
    stdout: str
    stderr: str


class ImageHandle:
    """An image built in the run's test session: its session tag (`label`), its id
    (`digest`), its configuration, commands run in throwaway containers, files read."""

    def __init__(self, name: str, label: str, probe: ImageProbe) -> None:
        self.name = name
        self.label = label
        self._probe = probe

    @property
    def digest(self) -> str:
        return self._probe.digest

    @property
    def config(self) -> ImageConfig:
        """Env, labels, user, entrypoint, cmd, workdir, exposed ports, volumes, architecture."""
        return self._probe.config()

    def run(self, command: str | Sequence[str], env: Mapping[str, str] | None = None) -> RunOutcome:
        """COMMAND (a string goes through `sh -c`) in a container removed after."""
        argv = ["sh", "-c", command] if isinstance(command, str) else list(command)
        result = self._probe.run(argv, env=env)
        return RunOutcome(result.exit_code, result.stdout, result.stderr)

    def file(self, path: str) -> bytes | None:
        """The file at PATH in the image; None when there is none."""
        return self._probe.file(path)

    def __repr__(self) -> str:
        return f"<ImageHandle {self.name} {self.label}>"


def image_factory(config: pytest.Config) -> Callable[[str], ImageHandle]:
    """The dockerpkg_image fixture's factory: a name of the tree -> its handle, built (with
    its parents, and what else the run wants) on first use; skipped as the Docker items are."""
    state = state_of(config)
    known = {i.name for i in _view(config).images}

    def image(name: str) -> ImageHandle:
        if name not in known:
            _failed(config, f"no image {name!r} in {state.directory}")
        state.need_docker()
        # Imported here: the session's modules load Docker's client.
        from dockerpkg.pytestplugin.sessionbuilds import not_built

        builds = state.builds()
        try:
            result = builds.result(name)
            if (why := not_built(result)) is not None:
                _failed(config, why)
            return ImageHandle(name, result.label, builds.probe(name))
        except DockerPkgError as exc:
            _failed(config, exc)

    return image
