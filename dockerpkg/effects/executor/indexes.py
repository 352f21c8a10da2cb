"""Steps of a tree with platforms: a platform image published under its platform tag alone
(`1.0-arm64`; `latest` never moves for one platform), and the index step, which puts one OCI
image index listing every platform's manifest under the version tag (the plan moves `latest`
by a tag-latest step after it, where it should move)."""

from __future__ import annotations

from dockerpkg.core.plan import PlannedImage
from dockerpkg.effects.executor.indexpromote import confirm_index
from dockerpkg.effects.executor.registrysteps import confirm_push, push_tag
from dockerpkg.effects.executor.shared import Shared
from dockerpkg.effects.registry import RegistryError
from dockerpkg.effects.tasks import TaskFailedError
from dockerpkg.effects.waits import DaemonError


def publish_platform(run: Shared, image: PlannedImage) -> str | None:
    """Push platform image IMAGE's tag and confirm it; its manifest's digest. The tag is not
    what users pull (the index is), so one holding other content (an earlier run's build
    that never made it into an index) is pushed over."""
    registry = run.registry_for("publishing")
    repository, tag, path = run.reference(image.label)
    with run.log(image.name, f"publish {image.label} ({image.platform})") as log:
        try:
            held = registry.config_digest(path, tag)
        except RegistryError as exc:
            raise TaskFailedError(f"cannot check {image.label} before pushing: {exc}") from None
        try:
            if held is not None and held == run.daemon.image_id(image.label):
                log.write(f"{image.label} is in the registry with this content: not pushed\n")
                pushed = None
            else:
                if held is not None:
                    log.write(f"{image.label} holds an image not in any index: pushed over\n")
                pushed = push_tag(run, repository, tag, log)
        except DaemonError as exc:
            raise run.failed(exc) from None
        digest = confirm_push(registry, path, pushed or tag, "pushed", image.label)
        log.write(f"{tag}: {digest}\n")
    return digest


def put_index(run: Shared, image: PlannedImage) -> str | None:
    """Put index image IMAGE's OCI index (each of its platforms' manifests, as its children
    name them) under its version tag; confirmed by the version tag."""
    registry = run.registry_for("putting an image index")
    _, tag, path = run.reference(image.label)
    children = [(platform, _child(run, image, platform, path)) for platform in image.platforms]
    if not children:
        raise TaskFailedError(f"the plan names no platforms for the index of {image.name}")
    with run.log(image.name, f"index {image.label}") as log:
        for platform, reference in children:
            log.write(f"{platform}: {reference}\n")
        try:
            digest = registry.put_index(path, (tag,), children)
            held = registry.manifest_digest(path, tag)
        except RegistryError as exc:
            raise TaskFailedError(f"cannot put the image index of {image.label}: {exc}") from None
        confirm_index(image, (tag,), digest, held, log)
    return digest


def _child(run: Shared, image: PlannedImage, platform: str, path: str) -> str:
    """Where IMAGE's index takes PLATFORM's manifest from: a tag or a digest of its own
    repository (PATH), from the plan's children (a platform label, or REPOSITORY@DIGEST)."""
    reference = image.children.get(platform)
    if reference is None:
        raise TaskFailedError(f"the plan names no {platform} image for the index of {image.name}")
    name, _, digest = reference.partition("@")
    _, tag, child_path = run.reference(name)
    if child_path != path:
        raise TaskFailedError(
            f"the {platform} image {reference} of {image.name} is not in its repository"
        )
    return digest or tag
