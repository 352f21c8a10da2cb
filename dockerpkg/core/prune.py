"""Prune planning: which local images of the tree's repositories are old, and which of those
must stay.

docker-pkg's rule: for each selected image (an fnmatch glob on its full label), every local
image of the same repository whose tags do not include the current label is old; with
`--nightly SUFFIX` the label kept is `repository:VERSION-SUFFIX` instead. Old images are removed
children first. Unlike docker-pkg, the plan predicts what the daemon would refuse and keeps it,
saying why, instead of failing on it:
- an image a container uses (running or not): `in_use_by_container`;
- an image another surviving image was built from, found through the parent IDs the daemon
  reports (a current image, or any image not removed): `needed_by_current_image`, or
  `in_use_by_container` when what needs it is kept for a container.
An old image that also carries a tag outside the pruned repositories is left alone (a note
says so): removing it would take a name someone else gave it.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from typing import Protocol

import attrs

from dockerpkg.core.config import Config
from dockerpkg.core.labels import split_label
from dockerpkg.core.plan import Action, BuildOptions, Op, Plan, Reason, Step
from dockerpkg.core.planner import planned_image
from dockerpkg.core.tree import Tree


class LocalImageLike(Protocol):
    """An image of the daemon (dockerpkg.core.images.LocalImage has this shape)."""

    @property
    def id(self) -> str: ...

    @property
    def tags(self) -> tuple[str, ...]: ...

    @property
    def parent(self) -> str | None: ...


def short_id(image_id: str) -> str:
    """The 12 hex digits `docker images` shows."""
    return image_id.removeprefix("sha256:")[:12]


def kept_label(repository: str, version: str, nightly_suffix: str | None) -> str:
    """The label prune keeps for an image: its version, or its version plus the nightly suffix."""
    tag = f"{version}-{nightly_suffix}" if nightly_suffix else version
    return f"{repository}:{tag}"


@attrs.frozen
class _Survivor:
    """A local image that stays, as the message about what it keeps should name it."""

    description: str
    for_container: bool


@attrs.frozen
class _Graph:
    by_id: Mapping[str, LocalImageLike]
    children: Mapping[str, tuple[str, ...]]
    depth: Mapping[str, int]


def _graph(images: Iterable[LocalImageLike]) -> _Graph:
    by_id = {image.id: image for image in images}
    children: dict[str, list[str]] = {image_id: [] for image_id in by_id}
    for image in by_id.values():
        if image.parent in children:
            children[image.parent].append(image.id)
    depth: dict[str, int] = {}
    for start in by_id:
        chain = []
        node: str | None = start
        while node is not None and node in by_id and node not in depth:
            chain.append(node)
            node = by_id[node].parent
        base = depth[node] + 1 if node is not None and node in depth else 0
        for offset, item in enumerate(reversed(chain)):
            depth[item] = base + offset
    return _Graph(
        by_id=by_id,
        children={k: tuple(sorted(v)) for k, v in children.items()},
        depth=depth,
    )


def plan_prune(
    tree: Tree,
    config: Config,
    local_images: Iterable[LocalImageLike],
    in_use: frozenset[str],
    *,
    select: str | None,
    nightly_suffix: str | None,
    directory: str,
    digest: str,
) -> Plan:
    """Remove and keep steps for the old local images of the selected images, children first.

    LOCAL_IMAGES should hold every image of the daemon, untagged ones included, so parent
    chains can be followed; IN_USE holds the IDs of images containers were created from.
    """
    kept = {
        name: kept_label(image.repository, image.spec.version, nightly_suffix)
        for name, image in tree.images.items()
    }
    selected = [n for n in tree.order if select is None or fnmatch.fnmatch(kept[n], select)]
    # Labels no image may lose: what each selected image keeps, and the current label of
    # every other image (not pruned, so not old).
    protected = set(kept.values()) | {
        kept_label(image.repository, image.spec.version, None)
        for name, image in tree.images.items()
        if name not in selected
    }
    owner = {tree.images[n].repository: n for n in selected}
    rank = {name: index for index, name in enumerate(reversed(tree.order))}
    graph = _graph(local_images)
    candidates: dict[str, str] = {}  # image ID -> name of the tree image it is an old one of
    notes: list[str] = []
    for image in graph.by_id.values():
        repositories = [split_label(tag)[0] for tag in image.tags]
        ours = [r for r in repositories if r in owner]
        if not ours or protected.intersection(image.tags):
            continue
        if len(ours) < len(repositories):
            notes.append(
                f"{short_id(image.id)} ({', '.join(sorted(image.tags))}) is also tagged outside "
                "the pruned repositories: left alone"
            )
            continue
        candidates[image.id] = min((owner[r] for r in ours), key=lambda n: rank[n])
    decided = _decide(graph, candidates, in_use, protected)
    # Deeper first: a child is always deeper than its parent, whatever repository it is in.
    decided.sort(key=lambda item: (-graph.depth[item[0]], rank[item[1].image], item[0]))
    steps = [step for _, step in decided]
    if not selected:
        notes.append(f"no image matches --select {select}")
    return Plan(
        action=Action.PRUNE,
        directory=directory,
        digest=digest,
        images=tuple(
            planned_image(tree.images[n])
            for n in sorted(selected, key=lambda n: tree.images[n].path)
        ),
        steps=tuple(steps),
        options=BuildOptions(
            select=select, pull=False, suffix=f"-{nightly_suffix}" if nightly_suffix else ""
        ),
        notes=tuple(sorted(notes)),
        registry=config.registry,
    )


def _describe(image: LocalImageLike, protected: set[str]) -> str:
    current = sorted(set(image.tags) & protected)
    return (current or sorted(image.tags))[0]


def _decide(
    graph: _Graph,
    candidates: Mapping[str, str],
    in_use: frozenset[str],
    protected: set[str],
) -> list[tuple[str, Step]]:
    """Walk every local image children first: an old image goes unless a container uses it or
    an image that stays was built from it; untagged parents go with their last child."""
    gone: set[str] = set()
    survivors: dict[str, _Survivor] = {}
    steps: list[tuple[str, Step]] = []
    for image_id in sorted(graph.by_id, key=lambda i: (-graph.depth[i], i)):
        image = graph.by_id[image_id]
        staying = [survivors[k] for k in graph.children[image_id] if k not in gone]
        tags = " ".join(sorted(image.tags))
        where = f"{short_id(image_id)} {tags}".strip()
        if image_id in candidates:
            name = candidates[image_id]
            if image_id in in_use:
                step = Step(
                    Op.KEEP,
                    name,
                    Reason.IN_USE_BY_CONTAINER,
                    image_id,
                    f"{where}; used by a container",
                )
                steps.append((image_id, step))
                survivors[image_id] = _Survivor(_describe(image, protected), True)
            elif staying:
                first = staying[0]
                reason, why = (
                    (
                        Reason.IN_USE_BY_CONTAINER,
                        f"parent of {first.description}, which a container uses",
                    )
                    if first.for_container
                    else (Reason.NEEDED_BY_CURRENT_IMAGE, f"{first.description} was built from it")
                )
                steps.append((image_id, Step(Op.KEEP, name, reason, image_id, f"{where}; {why}")))
                survivors[image_id] = _Survivor(_describe(image, protected), first.for_container)
            else:
                gone.add(image_id)
                steps.append((image_id, Step(Op.REMOVE, name, Reason.OLD_VERSION, image_id, where)))
        elif not image.tags and image_id not in in_use and graph.children[image_id] and not staying:
            gone.add(image_id)  # the daemon removes an untagged parent with its last child
        elif image.tags:
            survivors[image_id] = _Survivor(_describe(image, protected), False)
        else:
            # An untagged image that stays speaks for what keeps it: a child, or a container.
            description = (
                staying[0].description if staying else f"untagged image {short_id(image_id)}"
            )
            for_container = image_id in in_use or (bool(staying) and staying[0].for_container)
            survivors[image_id] = _Survivor(description, for_container)
    return steps
