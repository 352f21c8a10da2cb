"""What a saved build plan's steps imply of its platform images (see dockerpkg.core.planmatch):
which platforms each index listed, which platform images the daemon held, and the
per-platform digests its bases were pinned to."""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from dockerpkg.core.plan import Op, Plan
from dockerpkg.core.platforms import Platform, platform_name, platform_tag
from dockerpkg.core.platformtree import local_reference
from dockerpkg.core.tree import Tree

# The digest an index is claimed to list for a platform whose child the plan does not name.
CLAIMED_CHILD = "sha256:" + "0" * 63 + "4"


@attrs.frozen
class PlatformClaims:
    platform_digests: Mapping[str, Mapping[str, str]]
    local: frozenset[str]
    base_platforms: Mapping[str, Mapping[str, str]]


def claimed_platforms(saved: Plan, tree: Tree) -> PlatformClaims:
    """SAVED's platform images, keyed by TREE's labels: a platform image neither built,
    verified nor pushed was listed in its index (by the digest its index image's children
    name, or one the plan claims where they name none); one verified without a build, a parent
    of a build that is not pulled, or one its index image's children name by its platform
    label (no `@`: a plan that publishes nothing), was held by the daemon only."""
    by_op: dict[Op, set[str]] = {op: set() for op in Op}
    for step in saved.steps:
        by_op[step.op].add(step.image)
    built, verified = by_op[Op.BUILD], by_op[Op.VERIFY]
    parents = {i.name: i.parents for i in saved.images}
    local_only = {p for kid in built for p in parents.get(kid, ())} - built - by_op[Op.PULL]
    if not saved.options.pull:
        local_only = set()
    listed: dict[str, dict[str, str]] = {}
    local: set[str] = set()
    for image in saved.images:
        written = tree.images.get(image.name)
        if not image.platforms or written is None:
            continue
        found: dict[str, str] = {}
        for text in image.platforms:
            platform = Platform.parse(text)
            kid = platform_name(image.name, platform)
            label = f"{written.repository}:{platform_tag(written.tag, platform)}"
            if kid in local_only or (kid in verified and kid not in built):
                local.add(label)
            elif kid not in built and kid not in by_op[Op.PUBLISH]:
                reference = image.children.get(text, "")
                repository, at, digest = reference.partition("@")
                if reference and not at:
                    # Named by its platform label: the daemon's image, never in an index
                    # (a plan that publishes nothing).
                    local.add(label)
                    continue
                found[text] = digest if at and repository == written.repository else CLAIMED_CHILD
                local.add(label)
        if found:
            listed[written.label] = found
    return PlatformClaims(listed, frozenset(local), _pinned_bases(saved, tree))


def _pinned_bases(saved: Plan, tree: Tree) -> dict[str, dict[str, str]]:
    """Base label -> platform -> the digest SAVED's platform images pin it to: every platform
    image's pins (built or not), each pin's reference being the per-platform local name of
    one of its image's bases in TREE."""
    index_of = {kid: i.name for i in saved.images if i.platforms for kid in i.parents}
    found: dict[str, dict[str, str]] = {}
    for image in saved.images:
        written = tree.images.get(index_of.get(image.name, ""))
        if image.platform is None or not image.pins or written is None:
            continue
        platform = Platform.parse(image.platform)
        base_of = {local_reference(b, platform): b.partition("@")[0] for b in written.bases}
        for ref, digest in image.pins.items():
            if ref in base_of:
                found.setdefault(base_of[ref], {})[image.platform] = digest
    return found
