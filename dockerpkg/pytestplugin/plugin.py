"""The entry point pytest loads (`pytest11`): options, ini keys, markers and fixtures.

Off unless --dockerpkg or the ini key dockerpkg_tree names a tree; until then nothing of
dockerpkg beyond this package's option list is imported (our own test suite loads it too).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import pytest

from dockerpkg.pytestplugin.options import add_options, enabled

if TYPE_CHECKING:
    from dockerpkg.core.plan import Plan
    from dockerpkg.pytestplugin.fixtures import ImageHandle, LoadedTree

MARKERS = (
    "dockerpkg: an item the dockerpkg plugin collected from an image tree",
    "dockerpkg_docker: a dockerpkg item that needs Docker (build, test.sh, structure checks)",
    "dockerpkg_images(pattern='*', argname='image_name'): run the test once per image of the "
    "tree whose name matches the glob PATTERN, passing the name as ARGNAME",
)


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    for line in MARKERS:
        config.addinivalue_line("markers", line)
    if enabled(config):
        from dockerpkg.pytestplugin.hooks import start

        start(config)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker("dockerpkg_images")
    if marker is not None:
        from dockerpkg.pytestplugin.fixtures import parametrize_images

        parametrize_images(metafunc, marker)


@pytest.fixture(scope="session")
def dockerpkg_tree(request: pytest.FixtureRequest) -> LoadedTree:
    """The tree and its config, read once for the run (no Docker)."""
    from dockerpkg.pytestplugin.fixtures import loaded_tree

    return loaded_tree(request.config)


@pytest.fixture(scope="session")
def dockerpkg_plan(request: pytest.FixtureRequest) -> Plan:
    """The tree's offline build plan: every image taken as missing (no Docker)."""
    from dockerpkg.pytestplugin.fixtures import offline_plan

    return offline_plan(request.config)


@pytest.fixture(scope="session")
def rendered(request: pytest.FixtureRequest) -> Mapping[str, str]:
    """Image name -> its rendered Dockerfile, for every image that renders (no Docker)."""
    from dockerpkg.pytestplugin.fixtures import rendered_dockerfiles

    return rendered_dockerfiles(request.config)


@pytest.fixture(scope="session")
def dockerpkg_image(request: pytest.FixtureRequest) -> Callable[[str], ImageHandle]:
    """Image name -> a handle on the image built in the run's test session (built with its
    parents on first use, once per run); skipped without Docker, as the Docker items are."""
    from dockerpkg.pytestplugin.fixtures import image_factory

    return image_factory(request.config)
