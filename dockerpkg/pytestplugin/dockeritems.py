"""The items that need Docker: `build`, `test.sh`, and one per structure check of the image
folder's structure-tests.yaml. Skipped without --dockerpkg-build or a daemon (failed with
--dockerpkg-require-docker); the first of them to run builds what the run needs, in one run."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from dockerpkg.pytestplugin.items import DockerPkgItem
from dockerpkg.pytestplugin.state import state_of
from dockerpkg.pytestplugin.treeview import ImageView


# Made once: a mark per item, looked up by name each time, costs in a big tree.
DOCKER_MARK = pytest.mark.dockerpkg_docker


class DockerItem(DockerPkgItem):
    """An item run against the image built in the run's test session."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_marker(DOCKER_MARK)

    def runtest(self) -> None:
        state_of(self.config).need_docker()
        self.run_built()

    def run_built(self) -> None:
        raise NotImplementedError


class BuildItem(DockerItem):
    """The image builds (its parents first), as `build` builds it, publishing nothing."""

    def run_built(self) -> None:
        raise NotImplementedError


class VerifyItem(DockerItem):
    """The image's test.sh passes against the built image."""

    def run_built(self) -> None:
        raise NotImplementedError


def check_items(
    parent: pytest.Collector, image: ImageView, taken: Sequence[str]
) -> Iterator[DockerItem]:
    """One item per check of IMAGE's structure-tests.yaml, named after the check."""
    return iter(())
