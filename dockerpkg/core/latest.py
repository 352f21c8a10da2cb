"""`latest` checks: which published images' `latest` tag to move onto their version, and
which to leave alone because someone else moved it."""

from __future__ import annotations

from dockerpkg.core.changelog import versions_in
from dockerpkg.core.observed import Observed
from dockerpkg.core.plan import Op, Reason, Step
from dockerpkg.core.tree import Tree
from dockerpkg.core.versions import tag_of_version


def latest_steps(
    tree: Tree, observed: Observed, published: list[str], suffix: str
) -> tuple[list[Step], list[str]]:
    """A tag-latest step for each PUBLISHED image (of those selected) whose `latest` is
    missing or on an older version of this image (a tag its changelog names); `latest`
    anywhere else was moved by someone else: a note, never an overwrite."""
    steps: list[Step] = []
    notes: list[str] = []
    for name in published:
        image = tree.images[name]
        version = observed.digests.get(image.label)
        if version is None:
            continue
        latest = observed.digests.get(f"{image.repository}:latest")
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
                    f"{image.repository}:latest is on {where}, not on a version in "
                    f"{image.spec.source.file('changelog')}: left alone, as this tree did not "
                    "set it"
                )
                continue
            detail = f"latest on {', '.join(on)}"
        steps.append(Step(Op.TAG_LATEST, name, Reason.LATEST_NOT_CURRENT, image.label, detail))
    return steps, notes
