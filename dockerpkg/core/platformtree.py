"""Several platforms: a tree whose images have platforms, as the build planner sees it.

Each image N with platforms (its control's `Platforms`, else the config's `platforms`) becomes
one *platform image* per platform (`N:SUFFIX`, tagged `TAG-SUFFIX` in N's repository, its
parents the same platform's images of N's parents, rendered with the platform's variables)
and one *index image* N (label `REPOSITORY:TAG`, never rendered nor built, its parents its
platform images), whose index step puts the image index listing them. A platform image's
FROM lines name its parents' platform labels, and (when the run pulls) its bases'
per-platform local references, so no build takes a shared local tag for another platform's.

Only `plan_build` expands: lint, graph, update and prune see the tree as written.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

import attrs

from dockerpkg.core.config import Config
from dockerpkg.core.imagestate import State, image_state, state_of
from dockerpkg.core.labels import is_docker_tag, split_label
from dockerpkg.core.observed import Observed
from dockerpkg.core.plan import BuildOptions, Reason
from dockerpkg.core.platforms import Platform, platform_name, platform_tag
from dockerpkg.core.tree import Image, Tree, render_images
from dockerpkg.errors import DockerPkgError, Problem, error

States = dict[str, tuple[State, Reason]]


@attrs.frozen
class Expansion:
    """An expanded tree and what planning needs to know of its images."""

    tree: Tree
    # Platform image -> its index image and its platform.
    platform_of: Mapping[str, tuple[str, Platform]]
    # A base's per-platform local reference -> the base's label and the platform.
    base_of: Mapping[str, tuple[str, Platform]]

    def is_index(self, name: str) -> bool:
        image = self.tree.images[name]
        return bool(image.platforms) and image.platform is None

    def index_of(self, name: str) -> str:
        """The image NAME stands for: its index image's name, or its own."""
        found = self.platform_of.get(name)
        return name if found is None else found[0]


def image_platforms(image: Image, config: Config) -> tuple[str, ...]:
    """The platforms IMAGE is built for: its control's, else the config's (none: one image,
    the daemon's platform, as docker-pkg)."""
    return image.spec.platforms or config.platforms


def has_platforms(tree: Tree, config: Config) -> bool:
    return bool(config.platforms) or any(i.spec.platforms for i in tree.images.values())


def local_reference(base: str, platform: Platform) -> str:
    """The local tag a base pulled for PLATFORM is named as: `REPOSITORY:TAG-SUFFIX` (its
    digest, if pinned, dropped; `latest` where it names no tag)."""
    repository, tag = split_label(base.partition("@")[0])
    return f"{repository}:{platform_tag(tag or 'latest', platform)}"


def expand(tree: Tree, config: Config, *, pull: bool) -> Expansion:
    """TREE with platform images and index images in place of each image with platforms;
    DockerPkgError when an image and a parent differ in platforms."""
    images: dict[str, Image] = {}
    order: list[str] = []
    platform_of: dict[str, tuple[str, Platform]] = {}
    base_of: dict[str, tuple[str, Platform]] = {}
    problems: list[Problem] = []
    # Platform images whose image was rendered already: rendered for their platform too, so
    # a plan that renders everything (drift, findings) sees every platform's definition.
    rendered: list[str] = []
    for name in tree.order:
        image = tree.images[name]
        wanted = image_platforms(image, config)
        problems += _parent_problems(image, wanted, tree, config)
        problems += _tag_problems(image, wanted)
        if not wanted:
            images[name] = image
            order.append(name)
            continue
        kids = []
        for platform in (Platform.parse(p) for p in wanted):
            kid = _platform_image(image, platform, tree, pull=pull)
            if pull:
                base_of.update({ref: (b, platform) for b, ref in _base_refs(image, platform)})
            images[kid.name] = kid
            order.append(kid.name)
            platform_of[kid.name] = (name, platform)
            kids.append(kid.name)
            if image.dockerfile is not None:
                rendered.append(kid.name)
        images[name] = attrs.evolve(
            image,
            dockerfile=None,
            build_dockerfile=None,
            parents=tuple(kids),
            bases=(),
            platforms=wanted,
        )
        order.append(name)
    if problems:
        raise DockerPkgError(problems)
    expanded = attrs.evolve(tree, images=MappingProxyType(images), order=tuple(order))
    return Expansion(
        render_images(expanded, config, rendered),
        MappingProxyType(platform_of),
        MappingProxyType(base_of),
    )


def _base_refs(image: Image, platform: Platform) -> list[tuple[str, str]]:
    return [(base, local_reference(base, platform)) for base in image.bases]


def _platform_image(image: Image, platform: Platform, tree: Tree, *, pull: bool) -> Image:
    """IMAGE's build for PLATFORM (see the module's docstring)."""
    tag = platform_tag(image.tag, platform)
    parents = [platform_name(p, platform) for p in image.parents]
    # A parent's label (what image_tag gives) names its index: FROM its platform's image.
    rewrites = {}
    for parent in (tree.images[p] for p in image.parents):
        rewrites[parent.label] = f"{parent.repository}:{platform_tag(parent.tag, platform)}"
    bases = image.bases
    if pull:
        refs = dict(_base_refs(image, platform))
        rewrites.update(refs)
        bases = tuple(sorted(refs.values()))
    return attrs.evolve(
        image,
        tag=tag,
        label=f"{image.repository}:{tag}",
        dockerfile=None,
        build_dockerfile=None,
        parents=tuple(sorted(parents)),
        bases=bases,
        platform=str(platform),
        rewrites=MappingProxyType(rewrites),
        named=platform_name(image.name, platform),
    )


def _parent_problems(
    image: Image, wanted: tuple[str, ...], tree: Tree, config: Config
) -> list[Problem]:
    """An error for each parent of IMAGE lacking one of WANTED (IMAGE's platforms), or with
    platforms IMAGE has none of (it would be built from the parent's index, whichever
    platform the daemon picks)."""
    problems = []
    for parent in image.parents:
        theirs = image_platforms(tree.images[parent], config)
        if not wanted and theirs:
            message = (
                f"image '{image.name}' has no platforms, but its parent '{parent}' is built "
                f"for {', '.join(theirs)}: give '{image.name}' platforms too (control "
                "`Platforms`)"
            )
        elif missing := [p for p in wanted if p not in theirs]:
            message = (
                f"image '{image.name}' is built for {missing[0]}, but its parent '{parent}' "
                f"is not (its platforms: {', '.join(theirs) or 'none'})"
            )
        else:
            continue
        problems.append(_at_dependency(image, parent, message))
    return problems


def _tag_problems(image: Image, wanted: tuple[str, ...]) -> list[Problem]:
    """An error for each of WANTED whose platform tag of IMAGE's version is no Docker tag
    (too long: at most 128 characters), at the control's `Platforms` line where it gives
    them, else at the changelog (the version; the platforms are the config's)."""
    bad = [p for p in wanted if not is_docker_tag(platform_tag(image.tag, Platform.parse(p)))]
    if not bad:
        return []
    message = (
        f"image '{image.name}' version tag '{image.tag}' for {bad[0]} would be tagged "
        f"'{platform_tag(image.tag, Platform.parse(bad[0]))}', which is not a valid Docker tag "
        "(at most 128 characters)"
    )
    source = image.spec.source
    if source.control is not None and image.spec.platforms:
        line = next(
            (
                number
                for number, text in enumerate(source.control.splitlines(), 1)
                if text.lower().startswith("platforms:")
            ),
            None,
        )
        return [error(source.file("control"), message, line)]
    return [error(source.file("changelog"), message)]


def _at_dependency(image: Image, parent: str, message: str) -> Problem:
    """An error at IMAGE's control line naming PARENT, else at its template."""
    source = image.spec.source
    for dep in image.spec.depends:
        if dep.name == parent:
            return error(source.file("control"), message, dep.line)
    if source.control is not None and image.spec.platforms:
        return error(source.file("control"), message)
    return error(source.file("Dockerfile.template"), message)


def platform_states(expansion: Expansion, observed: Observed, pull: bool) -> States:
    """Each image's state: a platform image is published when the index under its image's
    version lists its platform (its own tag existing does not count), built when the daemon
    holds its platform label; others as always. Index images are judged later
    (index_states), once their platform images are."""
    states: States = {}
    tree = expansion.tree
    for name in tree.order:
        image = tree.images[name]
        found = expansion.platform_of.get(name)
        if found is None:
            states[name] = image_state(image.label, observed, pull)
            continue
        index, platform = found
        listed = observed.platform_digests.get(tree.images[index].label, {})
        states[name] = state_of(image.label, observed, pull, published=str(platform) in listed)
    return states


def index_states(expansion: Expansion, observed: Observed, states: States) -> States:
    """STATES with each index image's: published when its index lists every platform and
    none of its platform images is built again; else to put (`platform_missing` when the
    registry holds an index lacking a platform)."""
    states = dict(states)
    tree = expansion.tree
    for name in tree.order:
        image = tree.images[name]
        if not expansion.is_index(name):
            continue
        listed = observed.platform_digests.get(image.label, {})
        kids = [states[k] for k in image.parents]
        if all(state is State.PUBLISHED for state, _ in kids):
            states[name] = (State.PUBLISHED, Reason.NOT_IN_REGISTRY)
        elif observed.offline:
            states[name] = (State.TO_BUILD, Reason.OFFLINE)
        elif listed and any(p not in listed for p in image.platforms):
            states[name] = (State.TO_BUILD, Reason.PLATFORM_MISSING)
        else:
            first = next(reason for state, reason in kids if state is not State.PUBLISHED)
            states[name] = (State.TO_BUILD, first)
    return states


def with_platform_images(expansion: Expansion, selected: Iterable[str]) -> list[str]:
    """SELECTED (by --select or names) as index images and the others, with the platform
    images of the index images selected, in build order: a glob matching a platform
    image's label alone selects nothing."""
    chosen = {n for n in selected if n not in expansion.platform_of}
    return [n for n in expansion.tree.order if expansion.index_of(n) in chosen]


def with_indexes(expansion: Expansion, to_build: Iterable[str]) -> frozenset[str]:
    """TO_BUILD with the index image of each platform image in it: a parent built for a
    selected child is published whole, as any parent is."""
    found = set(to_build)
    found |= {expansion.platform_of[n][0] for n in found if n in expansion.platform_of}
    return frozenset(found)


def base_current(expansion: Expansion, observed: Observed) -> Mapping[str, str]:
    """Each base reference's manifest digest now, as builds record them: the registry's for
    a base's label, and the platform's in the base's index for its per-platform local
    reference."""
    current = dict(observed.base_digests)
    for ref, (base, platform) in expansion.base_of.items():
        digest = observed.base_platforms.get(base, {}).get(str(platform))
        if digest is not None:
            current[ref] = digest
    return current


def expanded(tree: Tree, config: Config, options: BuildOptions, directory: str) -> Expansion | None:
    """TREE expanded for its platforms (None: it has none); its errors are at the tree's
    files, not DIRECTORY."""
    if not has_platforms(tree, config):
        return None
    return expand(tree, config, pull=options.pull)
