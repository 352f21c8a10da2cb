"""Several platforms: the plan's parts that an expanded tree (dockerpkg.core.platformtree)
adds: pulls per platform, where each index step takes its platforms' manifests from,
whether the builders can build every platform, and base images pinned per platform."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import attrs

from dockerpkg.core.bases import pin_image, pinned
from dockerpkg.core.builders import BuilderSet
from dockerpkg.core.definition import Definitions
from dockerpkg.core.findings import findings_of
from dockerpkg.core.imagestate import State
from dockerpkg.core.observed import Observed
from dockerpkg.core.plan import Finding, Op, Plan, PlannedImage, Reason, Step
from dockerpkg.core.platforms import Platform, platform_name, platform_tag
from dockerpkg.core.platformstaging import staged_children
from dockerpkg.core.platformtree import Expansion, States, base_current
from dockerpkg.core.tree import Tree
from dockerpkg.errors import DockerPkgError


def platform_pulls(
    expansion: Expansion, to_build: Iterable[str], states: States, observed: Observed
) -> list[Step]:
    """The pulls the platform images of TO_BUILD need, each once, sorted: a base for each
    platform, named as its per-platform local reference; a published parent's platform
    image, by the digest the parent's index lists for it (by its platform tag where that is
    unknown), named as its platform label."""
    tree = expansion.tree
    bases: dict[str, Step] = {}
    parents: dict[str, Step] = {}
    for name in to_build:
        found = expansion.platform_of.get(name)
        if found is None:
            continue
        platform = str(found[1])
        for ref in tree.images[name].bases:
            base = expansion.base_of[ref][0]
            # By the digest the base's index lists for the platform, where known: a pull by
            # digest moves no tag, so builds of images without platforms that use the base's
            # own tag never meet another platform's image under it.
            digest = None if "@" in base else observed.base_platforms.get(base, {}).get(platform)
            label = base if digest is None else pinned(base, digest)
            bases[ref] = Step(Op.PULL, ref, Reason.BASE_IMAGE, label, ref, platform=platform)
        for parent in tree.images[name].parents:
            if states[parent][0] is not State.PUBLISHED:
                continue
            image = tree.images[parent]
            index = tree.images[expansion.platform_of[parent][0]]
            digest = observed.platform_digests.get(index.label, {}).get(platform)
            label = image.label if digest is None else f"{image.repository}@{digest}"
            parents[parent] = Step(
                Op.PULL, parent, Reason.PUBLISHED_DEPENDENCY, label, image.label, platform=platform
            )
    return [bases[k] for k in sorted(bases)] + [parents[k] for k in sorted(parents)]


def with_children(
    images: Iterable[PlannedImage], steps: Iterable[Step], observed: Observed
) -> tuple[PlannedImage, ...]:
    """IMAGES with each index image's children: for each platform, the platform label when
    the plan pushes it (its staging reference, when it stages it: all_or_nothing), else the
    digest the published index lists (`REPOSITORY@DIGEST`), else the platform label (a tag
    pushed before)."""
    steps = list(steps)
    staged = staged_children(steps)
    pushed = {s.image for s in steps if s.op is Op.PUBLISH} | staged.keys()
    found = []
    for image in images:
        if not image.platforms:
            found.append(image)
            continue
        listed = observed.platform_digests.get(image.label, {})
        children = {}
        for text in image.platforms:
            platform = Platform.parse(text)
            label = f"{image.repository}:{platform_tag(image.tag, platform)}"
            digest = listed.get(text)
            pushes = platform_name(image.name, platform) in pushed
            children[text] = label if pushes or digest is None else f"{image.repository}@{digest}"
            children[text] = staged.get(platform_name(image.name, platform), children[text])
        found.append(attrs.evolve(image, children=children))
    return tuple(found)


def builder_notes(
    building: Mapping[str, str],
    builders: BuilderSet,
    observed: Observed,
    directory: str,
    files: Mapping[str, str] | None = None,
) -> list[str]:
    """The notes about who builds BUILDING (platform -> the first image built for it), or
    DockerPkgError when no builder can build one: by the platforms declared for the
    config's builders, else by the daemon's own platform and those its machine emulates
    (an error at the file FILES names as asking for the platform, else at DIRECTORY)."""
    if not building:
        return []
    declared = [b for b in builders.builders if b.platforms]
    if builders.builders and len(declared) < len(builders.builders):
        if builders.several:
            undeclared = next(b for b in builders.builders if not b.platforms)
            raise DockerPkgError.single(
                builders.origin.path,
                f"{len(builders.builders)} builders and images with platforms: every builder "
                f"must declare the platforms it builds (`platforms`), {undeclared.name} does not",
                builders.origin.line,
            )
        return [
            f"platforms: whether {builders.builders[0].name} builds {_listed(building)} "
            "was not checked (declare its `platforms`)"
        ]
    if declared:
        can = {p for b in declared for p in b.platforms}
        _refuse(
            [p for p in building if p not in can],
            building,
            builders.origin.path,
            "no builder declares it",
            builders.origin.line,
        )
        return []
    native = observed.daemon_platform
    if native is None:
        return [
            f"platforms: whether the daemon builds {_listed(building)} was not checked "
            "(its platform is unknown)"
        ]
    can = {native} | observed.emulated
    missing = [p for p in building if p not in can]
    _refuse(
        missing,
        building,
        (files or {}).get(missing[0], directory) if missing else directory,
        f"the daemon is {native} and its machine emulates "
        f"{', '.join(sorted(observed.emulated)) or 'no other platform'}",
    )
    emulated = [p for p in building if p != native]
    if not emulated:
        return []
    return [
        f"platforms: {', '.join(emulated)} built under emulation (QEMU) on the daemon's "
        f"{native} machine: slower than a native builder"
    ]


def _listed(building: Mapping[str, str]) -> str:
    return ", ".join(building)


def _refuse(
    missing: list[str], building: Mapping[str, str], where: str, why: str, line: int | None = None
) -> None:
    """DockerPkgError at WHERE (and LINE) naming the first of MISSING and its image."""
    if missing:
        first = missing[0]
        raise DockerPkgError.single(
            where,
            f"no builder can build {first} (image '{building[first]}'): {why}; see "
            "docs/platforms.md for setting up QEMU or native builders",
            line,
        )


def missing_base_platforms(
    expansion: Expansion, building: Iterable[str], observed: Observed, directory: str
) -> None:
    """DockerPkgError when a base of an image BUILDING (platform images) lacks its platform,
    as the base's index in its registry says (planning online)."""
    if observed.offline:
        return
    for name in building:
        for ref in expansion.tree.images[name].bases:
            if ref not in expansion.base_of:
                continue
            base, platform = expansion.base_of[ref]
            listed = observed.base_platforms.get(base)
            if listed is not None and str(platform) not in listed:
                raise DockerPkgError.single(
                    expansion.tree.images[name].spec.source.file("Dockerfile.template"),
                    f"base image {base} has no {platform} image (its registry lists "
                    f"{', '.join(sorted(listed)) or 'none'}), needed to build '{name}'",
                )


def pin_platforms(plan: Plan, expansion: Expansion, observed: Observed) -> tuple[Plan, list[str]]:
    """pin_bases for platform images: each FROM line naming a base's per-platform local
    reference held to the digest the base's index lists for that platform, and its pull
    held to it (`BASE@DIGEST`, pulled for the platform); notes for what cannot be held."""
    pins: dict[str, str] = {}
    unknown: set[str] = set()
    images = []
    for image in plan.images:
        used = {}
        for ref in image.bases if image.platform is not None else ():
            if ref not in expansion.base_of or "@" in expansion.base_of[ref][0]:
                continue
            base, platform = expansion.base_of[ref]
            digest = observed.base_platforms.get(base, {}).get(str(platform))
            if digest is None:
                unknown.add(ref)
            else:
                used[ref] = pins[ref] = digest
        images.append(pin_image(image, used))
    steps = tuple(
        attrs.evolve(step, label=pinned(expansion.base_of[step.image][0], pins[step.image]))
        if step.op is Op.PULL and step.platform is not None and step.image in pins
        else step
        for step in plan.steps
    )
    if observed.offline:
        notes = (
            [
                "pin_bases: planned offline, so the base images' digests per platform are "
                "unknown: FROM lines are not pinned"
            ]
            if unknown
            else []
        )
    else:
        notes = [
            f"pin_bases: the digest of {expansion.base_of[ref][0]} for "
            f"{expansion.base_of[ref][1]} is unknown: {ref} not pinned"
            for ref in sorted(unknown)
        ]
    return attrs.evolve(plan, images=tuple(images), steps=steps), notes


def platform_notes(
    steps: Iterable[Step],
    builders: BuilderSet,
    observed: Observed,
    directory: str,
    tree: Tree | None = None,
) -> list[str]:
    """What the plan says of its platforms: who builds each platform STEPS build."""
    building: dict[str, str] = {}
    for step in steps:
        if step.op is Op.BUILD and step.platform is not None:
            building.setdefault(step.platform, step.image)
    # The control file asking for a platform, where it is the image's own (else the
    # config's platforms: the directory, the config's path being unknown here).
    files = {}
    for platform, name in building.items():
        spec = None if tree is None else tree.images[name].spec
        if spec is not None and spec.platforms and spec.source.control is not None:
            files[platform] = spec.source.file("control")
    return builder_notes(building, builders, observed, directory, files)


def platform_findings(
    trees: tuple[Tree, Expansion | None],
    observed: Observed,
    defined: Definitions,
    published: list[str],
    directory: str,
) -> tuple[list[Finding], list[str]]:
    """findings_of the PUBLISHED images; with platforms, of their platform images (an index
    has no labels of its own), bases compared per platform."""
    tree, expansion = trees
    if expansion is None:
        return findings_of(tree, observed, defined, published, directory)
    shown = [n for n in published if not expansion.is_index(n)]
    current = base_current(expansion, observed)
    # A build records the digest its base's tag resolved to when pulled for its platform:
    # the base's index, where it has one. The same index now means the same platform's image.
    recorded = {
        label: {
            ref: current[ref]
            if ref in expansion.base_of
            and ref in current
            and digest == observed.base_digests.get(expansion.base_of[ref][0])
            else digest
            for ref, digest in refs.items()
        }
        for label, refs in observed.bases.items()
    }
    observed = attrs.evolve(observed, bases=recorded)
    return findings_of(tree, observed, defined, shown, directory, current=current)
