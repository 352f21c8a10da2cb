"""The tree as the plugin shows it: each image folder's outcome of the one reading, rendering
and linting of the tree (dockerpkg.api.review.review_tree), grouped in one pass."""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Sequence

import attrs

from dockerpkg.api.review import TreeReview
from dockerpkg.core.lint import Finding
from dockerpkg.core.render import check_numeric_user
from dockerpkg.core.spec import ImageSource
from dockerpkg.errors import Problem, Severity, error


@attrs.frozen
class ImageView:
    """One image folder: its name (the folder's path when its changelog cannot be read), the
    errors of reading and rendering it, its lint findings, its rendered Dockerfile."""

    name: str
    source: ImageSource
    errors: tuple[Problem, ...]
    findings: tuple[Finding, ...]
    dockerfile: str | None

    @property
    def folder(self) -> str:
        """The folder, relative to the tree, "/"-separated ("." for the tree itself)."""
        return self.source.path


@attrs.frozen
class TreeView:
    """Every image folder, in the order the tree lists them, and the findings about no
    folder in particular (the config's, the tree's)."""

    review: TreeReview
    images: tuple[ImageView, ...]
    outside: tuple[Finding, ...]

    def rendered(self) -> dict[str, str]:
        """Image name -> rendered Dockerfile, for the images that render."""
        return {i.name: i.dockerfile for i in self.images if i.dockerfile is not None}


def _owner(path: str, folders: Mapping[str, int]) -> int | None:
    """The index of the image folder holding PATH (relative to the tree), if any: a walk up
    PATH's folders, so grouping costs the depth of a path, not the size of the tree."""
    here = path
    while here not in ("", "."):
        if here in folders:
            return folders[here]
        parent = posixpath.dirname(here)
        if parent == here:  # an absolute path (a config file) at its root
            return None
        here = parent
    return folders.get(".")


def _names(review: TreeReview) -> dict[str, str]:
    """Folder -> image name, for the folders whose image was read."""
    return {spec.path: spec.name for spec in review.analysis.specs}


def tree_view(review: TreeReview) -> TreeView:
    """REVIEW's outcome per image folder."""
    sources = review.snapshot.images
    folders = {source.path: n for n, source in enumerate(sources)}
    errors: list[list[Problem]] = [[] for _ in sources]
    findings: list[list[Finding]] = [[] for _ in sources]
    outside: list[Finding] = []
    for problem in review.analysis.problems:
        owner = _owner(problem.location.path, folders)
        if owner is not None and problem.severity is Severity.ERROR:
            errors[owner].append(problem)
    for finding in review.findings:
        owner = _owner(finding.problem.location.path, folders)
        (outside if owner is None else findings[owner]).append(finding)
    names = _names(review)
    rendered = review.analysis.rendered
    images = []
    for n, source in enumerate(sources):
        dockerfile = rendered[source.path].dockerfile if source.path in rendered else None
        own = _numeric_user(review, source, dockerfile)
        images.append(
            ImageView(
                name=names.get(source.path, source.path),
                source=source,
                errors=(*errors[n], *own),
                findings=tuple(findings[n]),
                dockerfile=None if own else dockerfile,
            )
        )
    return TreeView(review, tuple(_unique(images)), tuple(outside))


def _numeric_user(
    review: TreeReview, source: ImageSource, dockerfile: str | None
) -> tuple[Problem, ...]:
    """The error a build's rendering gives under force_numeric_user (lint's rendering, which
    the review made, leaves it to the USER rule)."""
    if not review.config.force_numeric_user or dockerfile is None:
        return ()
    problem = check_numeric_user(dockerfile)
    return () if problem is None else (error(source.file("Dockerfile.template"), problem),)


def _unique(images: Sequence[ImageView]) -> list[ImageView]:
    """IMAGES with names made unique (an unread folder may be named as another image is)."""
    # Evolved only when renamed: a copy of every image costs in a big tree.
    return [
        image if name == image.name else attrs.evolve(image, name=name)
        for image, name in zip(images, unique_names([image.name for image in images]), strict=True)
    ]


def unique_names(names: Sequence[str]) -> list[str]:
    """NAMES with the n-th use of a name (n >= 2) marked ` #n`: sibling nodes must differ."""
    seen: dict[str, int] = {}
    found = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        found.append(name if seen[name] == 1 else f"{name} #{seen[name]}")
    return found
