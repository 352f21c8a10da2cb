"""The collection: the tree is a directory node, each image a node named after the image
with its folder as location, holding the image's items."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dockerpkg.errors import DockerPkgError
from dockerpkg.pytestplugin.dockeritems import BuildItem, VerifyItem, check_items
from dockerpkg.pytestplugin.failures import worded
from dockerpkg.pytestplugin.items import (
    DockerPkgItem,
    LintItem,
    RenderItem,
    TreeErrorItem,
    TreeLintItem,
    domain,
)
from dockerpkg.pytestplugin.state import state_of
from dockerpkg.pytestplugin.treeview import ImageView

# Made once: looked up by name on each node, a mark costs in a big tree.
DOCKERPKG_MARK = pytest.mark.dockerpkg


class TreeNode(pytest.Directory):
    """The image tree: read, rendered and linted once, when collected. The `dockerpkg`
    marker goes on its image nodes and its own items, not on it: the user's tests it also
    holds are not the plugin's (markers are inherited: one mark per image, not per item)."""

    def collect(self) -> Iterator[pytest.Item | pytest.Collector]:
        try:
            view = state_of(self.config).view()
        except DockerPkgError as exc:
            # One failing item: the user's own tests in the tree's folders are still collected.
            item = TreeErrorItem.from_parent(self, name="tree", image=None, problem=str(exc))
            item.add_marker(DOCKERPKG_MARK)
            yield item
        else:
            for image in view.images:
                path = self.path if image.folder == "." else self.path / image.folder
                node = ImageNode.from_parent(self, name=image.name, path=path, image=image)
                node.add_marker(DOCKERPKG_MARK)
                yield node
            if view.outside:
                lint = TreeLintItem.from_parent(
                    self, name="lint", image=None, findings=view.outside
                )
                lint.add_marker(DOCKERPKG_MARK)
                yield lint
        yield from self._others()

    def _others(self) -> Iterator[pytest.Item | pytest.Collector]:
        """What pytest collects in the tree's other folders and files (the user's tests, when
        the tree is the repository), as its own Dir would: image folders are left out, here
        and, deeper, by the hooks' pytest_ignore_collect."""
        try:
            images = state_of(self.config).image_folders()
        except DockerPkgError:
            images = frozenset()  # the tree is unreadable: its folders are not known
        ihook = self.ihook
        for entry in sorted(os.scandir(self.path), key=lambda e: e.name):
            path = Path(entry.path)
            if path in images:
                continue
            initial = self.session.isinitpath(path, with_parents=entry.is_dir())
            if not initial and ihook.pytest_ignore_collect(
                collection_path=path, config=self.config
            ):
                continue
            if entry.is_dir():
                found = ihook.pytest_collect_directory(path=path, parent=self)
                if found is not None:
                    yield found
            elif entry.is_file():
                yield from ihook.pytest_collect_file(file_path=path, parent=self)

    def repr_failure(  # type: ignore[override]
        self, excinfo: pytest.ExceptionInfo[BaseException]
    ) -> str | Any:
        text = worded(excinfo)
        return super().repr_failure(excinfo) if text is None else state_of(self.config).shown(text)


class ImageNode(pytest.Collector):
    """One image: render and lint items, then, with --dockerpkg-build, the Docker items."""

    def __init__(self, *, image: ImageView, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.image = image

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, domain(self)

    def collect(self) -> Iterator[DockerPkgItem]:
        image = self.image
        yield RenderItem.from_parent(self, name="render", image=image)
        yield LintItem.from_parent(self, name="lint", image=image, findings=image.findings)
        # Without --dockerpkg-build the Docker items do not exist (nor is structure-tests.yaml
        # read): a collection costs render and lint only.
        if state_of(self.config).settings.build:
            yield BuildItem.from_parent(self, name="build", image=image)
            yield VerifyItem.from_parent(self, name="test.sh", image=image)
            yield from check_items(self, image, taken=("render", "lint", "build", "test.sh"))

    def repr_failure(  # type: ignore[override]
        self, excinfo: pytest.ExceptionInfo[BaseException]
    ) -> str | Any:
        text = worded(excinfo)
        return super().repr_failure(excinfo) if text is None else state_of(self.config).shown(text)
