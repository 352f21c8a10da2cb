"""What the plugin's fixtures give: the tree and its config, the offline plan, the rendered
Dockerfiles, handles on built images; and the parametrization over images."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import NoReturn

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


@attrs.frozen
class LoadedTree:
    """The tree (labels, rendered Dockerfiles, build order) and its config."""

    directory: str
    config_path: str | None
    config: Config
    tree: Tree


def _failed(exc: DockerPkgError) -> NoReturn:
    pytest.fail(str(exc), pytrace=False)


def _view(config: pytest.Config) -> TreeView:
    try:
        return state_of(config).view()
    except DockerPkgError as exc:
        _failed(exc)


def loaded_tree(config: pytest.Config) -> LoadedTree:
    """The tree of CONFIG's run; fails with dockerpkg's messages when it does not resolve."""
    view = _view(config)
    review = view.review
    if review.analysis.tree is None:
        _failed(DockerPkgError(review.analysis.problems))
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
        _failed(exc)


def rendered_dockerfiles(config: pytest.Config) -> Mapping[str, str]:
    return MappingProxyType(_view(config).rendered())


def parametrize_images(metafunc: pytest.Metafunc, marker: pytest.Mark) -> None:
    """Parametrize METAFUNC's test over the images MARKER's glob matches (all by default)."""
    pattern = str(marker.args[0]) if marker.args else str(marker.kwargs.get("pattern", "*"))
    argument = str(marker.kwargs.get("argname", IMAGE_ARGUMENT))
    names = [i.name for i in _view(metafunc.config).images if fnmatch.fnmatchcase(i.name, pattern)]
    metafunc.parametrize(argument, names, ids=names)


class ImageHandle:
    """A built image (filled in with the test session)."""


def image_factory(config: pytest.Config) -> Callable[[str], ImageHandle]:
    state = state_of(config)

    def image(name: str) -> ImageHandle:
        state.need_docker()
        raise NotImplementedError

    return image
