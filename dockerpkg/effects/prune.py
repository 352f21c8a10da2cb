"""Prune against the daemon: observe every image and container once, then remove what a prune
plan says, never forcing; a failure is recorded and the run goes on with the rest."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import attrs

from dockerpkg.core.images import LocalImage, local_images
from dockerpkg.core.plan import Op, Plan, Step
from dockerpkg.effects.imagestore import ImageStore, ImageStoreError


@attrs.frozen
class LocalState:
    """What prune plans from: every image (untagged ones too, for parent chains) and the IDs
    of images containers were created from."""

    images: tuple[LocalImage, ...]
    in_use: frozenset[str]

    def by_id(self) -> dict[str, LocalImage]:
        return {image.id: image for image in self.images}


def observe_local(store: ImageStore) -> LocalState:
    """One call for the images, one for the containers."""
    images = local_images(store.images())
    in_use = frozenset(c["ImageID"] for c in store.containers())
    return LocalState(images=images, in_use=in_use)


@attrs.frozen
class Removal:
    """What happened to one remove step: done, failed (with the daemon's words), or skipped."""

    step: Step
    error: str | None = None
    skipped: bool = False

    @property
    def failed(self) -> bool:
        return self.error is not None and not self.skipped


def _ancestors(image_id: str, images: Mapping[str, LocalImage]) -> set[str]:
    found: set[str] = set()
    node = images[image_id].parent if image_id in images else None
    while node is not None and node not in found:
        found.add(node)
        node = images[node].parent if node in images else None
    return found


class ImageRemover(Protocol):
    """What removing needs of a daemon (an ImageStore has it)."""

    def remove_image(self, image: str) -> None: ...


def remove_images(
    store: ImageRemover, plan: Plan, images: Mapping[str, LocalImage]
) -> tuple[Removal, ...]:
    """Carry out the plan's remove steps in order. An image with several tags loses all but
    one by name first, since the daemon only removes a single-named image by ID unforced;
    the parents of an image that could not be removed are skipped, as the daemon would refuse
    them too."""
    results: list[Removal] = []
    blocked: set[str] = set()
    for step in plan.steps:
        if step.op is not Op.REMOVE or step.label is None:
            continue
        if step.label in blocked:
            results.append(Removal(step, "a child image could not be removed", skipped=True))
            continue
        known = images.get(step.label)
        try:
            for tag in sorted(known.tags)[:-1] if known is not None else ():
                store.remove_image(tag)
            store.remove_image(step.label)
        except ImageStoreError as exc:
            results.append(Removal(step, str(exc)))
            blocked |= _ancestors(step.label, images)
            continue
        results.append(Removal(step))
    return tuple(results)


def summary(results: Sequence[Removal]) -> str:
    removed = sum(1 for r in results if r.error is None)
    failed = sum(1 for r in results if r.failed)
    skipped = sum(1 for r in results if r.skipped)
    return f"Done: {removed} removed, {failed} failed, {skipped} skipped."
