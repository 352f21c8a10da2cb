"""`latest` checks: which published images' `latest` tag to move onto their version, and
which to leave alone because someone else moved it."""

from __future__ import annotations

from collections.abc import Sequence

from dockerpkg.core.changelog import versions_in
from dockerpkg.core.observed import Observed
from dockerpkg.core.plan import Op, Reason, Step
from dockerpkg.core.tree import Image, Tree
from dockerpkg.core.versions import tag_of_version

# The detail of an index image's tag-latest after the index of a version not yet published.
NEW_VERSION = "latest moves to a new version"


def latest_steps(
    tree: Tree,
    observed: Observed,
    published: list[str],
    suffix: str,
    indexed: Sequence[Step] = (),
) -> tuple[list[Step], list[str]]:
    """A tag-latest step for each PUBLISHED image (of those selected; a platform image's
    `latest` never moves, its index image's does) whose `latest` is
    missing or on an older version of this image (a tag its changelog names); `latest`
    anywhere else was moved by someone else: a note, never an overwrite.

    An index step (of INDEXED) puts the version tag only, so `latest` of an index image
    moves by a tag-latest step after it: always for a version not yet published (as a
    publication moves `latest`); for a published version whose index lacks a platform, where
    `latest` is on that version already (it follows the new index) or as for PUBLISHED."""
    steps: list[Step] = []
    notes: list[str] = []
    names = [n for n in published if tree.images[n].platform is None]
    for step in indexed:
        if step.op is not Op.INDEX:
            continue
        image = tree.images[step.image]
        version = observed.digests.get(image.label)
        if step.reason is not Reason.PLATFORM_MISSING:
            steps.append(_tag_latest(image, NEW_VERSION))
        elif version is not None and observed.digests.get(_latest(image)) == version:
            steps.append(_tag_latest(image, f"latest on {image.tag}"))
        else:
            names.append(step.image)
    for name in names:
        image = tree.images[name]
        version = observed.digests.get(image.label)
        if version is None:
            continue
        latest = observed.digests.get(_latest(image))
        if latest == version:
            continue
        if latest is None:
            detail = "latest not set"
        else:
            tags = observed.tags.get(image.repository, ())
            on = [
                tag
                for tag in tags
                if tag != "latest" and observed.digests.get(f"{image.repository}:{tag}") == latest
            ]
            ours = versions_in(image.spec.source.changelog)
            if not on or not all(any(tag_of_version(t, v, suffix) for v in ours) for t in on):
                where = ", ".join(on) or "an image no other tag names"
                notes.append(
                    f"{_latest(image)} is on {where}, not on a version in "
                    f"{image.spec.source.file('changelog')}: left alone, as this tree did not "
                    "set it"
                )
                continue
            detail = f"latest on {', '.join(on)}"
        steps.append(_tag_latest(image, detail))
    return steps, notes


def _latest(image: Image) -> str:
    return f"{image.repository}:latest"


def _tag_latest(image: Image, detail: str) -> Step:
    return Step(Op.TAG_LATEST, image.name, Reason.LATEST_NOT_CURRENT, image.label, detail)
