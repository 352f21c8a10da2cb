"""The promotion of an index image (`--publish all_or_nothing` with platforms): each
platform's manifest this run staged (by the digest its stage step pushed, after its
verification) copied into the image's repository, the index listing every platform put
under the version tag and `latest`, then the staged manifests deleted."""

from __future__ import annotations

from collections.abc import Sequence
from typing import IO

from dockerpkg.core.plan import PlannedImage
from dockerpkg.core.platforms import Platform, platform_name
from dockerpkg.effects.executor.shared import Shared
from dockerpkg.effects.registry import RegistryError
from dockerpkg.effects.tasks import TaskFailedError


def promote_index(run: Shared, image: PlannedImage) -> str | None:
    """Move index image IMAGE's version tag and `latest` to an index of its platforms' images
    (see the module's docstring); the index's digest, and what of the staging was kept. A
    failure leaves every tag of the image as it was."""
    registry = run.registry_for("promoting")
    _, tag, path = run.reference(image.label)
    children, staging = _children(run, image, path)
    with run.log(image.name, f"promote {image.label} (index)") as log:
        for platform, digest in children:
            log.write(f"{platform}: {digest}\n")
        try:
            digest = registry.promote_index(staging or path, path, (tag, "latest"), children)
            held = registry.manifest_digest(path, tag)
        except RegistryError as exc:
            raise TaskFailedError(f"cannot promote {image.label}: {exc}") from None
        confirm_index(image, (tag, "latest"), digest, held, log)
        staged = [d for p, d in children if run.staged.get(_kid(image, p)) == d]
        left = [why for d in staged if (why := registry.delete_manifest(staging, d)) is not None]
        for why in left:
            log.write(f"staging left: {why}\n")
    return f"{digest}; staging kept: {left[0]}" if left else f"{digest}; staging deleted"


def confirm_index(
    image: PlannedImage, tags: Sequence[str], digest: str, held: str | None, log: IO[str]
) -> None:
    """Fail unless IMAGE's version tag (the first of TAGS, those the index DIGEST was just
    put under) HELD it."""
    if held != digest:
        raise TaskFailedError(
            f"put the image index {digest[:19]}, but {image.label} holds {held or 'nothing'}"
        )
    log.write(f"{' and '.join(tags)}: {digest}\n")


def _kid(image: PlannedImage, platform: str) -> str:
    return platform_name(image.name, Platform.parse(platform))


def _children(run: Shared, image: PlannedImage, path: str) -> tuple[list[tuple[str, str]], str]:
    """IMAGE's index children (platform, manifest digest) and the staging repository's path:
    a platform the published index lists, by its digest; a staged one, by the digest this
    run's stage step pushed (never whatever its staging tag holds by now)."""
    children = []
    staging = ""
    for platform in image.platforms:
        reference = image.children.get(platform)
        if reference is None:
            raise TaskFailedError(f"the plan names no {platform} image for {image.name}")
        name, _, digest = reference.partition("@")
        _, _, where = run.reference(name)
        if digest:
            if where != path:
                raise TaskFailedError(f"the {platform} image {reference} is not in {image.label}")
            children.append((platform, digest))
            continue
        pushed = run.staged.get(_kid(image, platform))
        if pushed is None:
            raise TaskFailedError(f"this run staged no {platform} image of {image.name}")
        staging = where
        children.append((platform, pushed))
    return children, staging
