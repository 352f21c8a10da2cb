"""Steps that move what users pull: publish (push the version, point `latest` at it), stage
(push under a staging reference), promote (move the version and `latest` to what was staged),
unstage (delete what an earlier run left staged) and tag-latest; each confirmed by the
registry."""

from __future__ import annotations

from typing import IO

from dockerpkg.core.plan import PlannedImage
from dockerpkg.core.staging import staged_reference
from dockerpkg.effects.executor import indexpromote
from dockerpkg.effects.executor.shared import Shared
from dockerpkg.effects.executor.transfers import gated
from dockerpkg.effects.ports import Registry
from dockerpkg.effects.registry import RegistryError
from dockerpkg.effects.stagedidentity import require_identity
from dockerpkg.effects.tasks import TaskFailedError
from dockerpkg.effects.waits import DaemonError


def publish(run: Shared, image: PlannedImage) -> str | None:
    """Push the version tag, then point `latest` at the same manifest in the registry (a
    second `docker push` would check every layer again), which confirms the push too."""
    registry = run.registry_for("publishing")
    repository, tag, path = run.reference(image.label)
    with run.log(image.name, f"publish {image.label}") as log:
        try:
            run.daemon.tag(image.label, repository, "latest")
            if _already_published(run, registry, image, (path, tag), log):
                log.write(f"{image.label} is published with this content: not pushed again\n")
            else:
                push_tag(run, repository, tag, log)
        except DaemonError as exc:
            raise run.failed(exc) from None
        try:
            digest = registry.copy_tag(path, tag, "latest")
        except RegistryError as exc:
            raise TaskFailedError(
                f"pushed, but cannot confirm it or tag it latest: {exc}"
            ) from None
        if digest is None:
            raise TaskFailedError(f"pushed, but the registry does not have {image.label}")
        log.write(f"latest: {digest} (set in the registry to the manifest of {tag})\n")
    return digest


def stage(run: Shared, image: PlannedImage, target: str) -> str | None:
    """Push IMAGE as TARGET, its staging reference; nothing users pull moves."""
    registry = run.registry_for("staging")
    repository, tag, path = run.reference(target)
    with run.log(image.name, f"stage {image.label} as {target}") as log:
        try:
            run.daemon.tag(image.label, repository, tag)
            pushed = push_tag(run, repository, tag, log)
        except DaemonError as exc:
            raise run.failed(exc) from None
        digest = confirm_push(registry, path, pushed or tag, "staged", target)
        log.write(f"staged: {digest}\n")
    run.staged[image.name] = digest  # one dict write: atomic
    return digest


def confirm_push(registry: Registry, path: str, reference: str, done: str, shown: str) -> str:
    """The digest of the manifest REFERENCE of PATH, just pushed (DONE: "pushed", "staged")
    as SHOWN; by the digest pushed where known: the tag may hold someone else's push by now."""
    try:
        digest = registry.manifest_digest(path, reference)
    except RegistryError as exc:
        raise TaskFailedError(f"{done}, but cannot confirm it: {exc}") from None
    if digest is None:
        raise TaskFailedError(f"{done}, but the registry does not have {shown}")
    return digest


def promote(run: Shared, image: PlannedImage, detail: str | None) -> str | None:
    """Move IMAGE's version tag and `latest` to the manifest staged (by its digest: the one
    this run pushed after verifying it, or the one the plan observed), then delete the
    staged manifest; one the registry keeps is named, not failed. A failure after the
    version tag moved says so (its detail is the digest). An index image (platforms) moves
    them to an index of its staged platforms' images (effects.executor.indexpromote)."""
    if image.platforms:
        return indexpromote.promote_index(run, image)
    registry = run.registry_for("promoting")
    if detail is None:
        raise TaskFailedError(f"the plan names no staging reference for {image.name}")
    staged, held = staged_reference(detail)
    digest = held or run.staged.get(image.name)
    if digest is None:
        raise TaskFailedError(f"this run staged no image of {image.name} to promote")
    require_identity(registry, run.settings.config.registry, detail, image.definition)
    _, tag, staging_path = run.reference(staged)
    _, _, path = run.reference(image.label)
    with run.log(image.name, f"promote {staged}@{digest} to {image.label}") as log:
        try:
            moved = registry.promote(staging_path, path, tag, digest)
        except RegistryError as exc:
            raise TaskFailedError(f"cannot promote {staged}: {exc}") from None
        if moved is None:
            raise TaskFailedError(f"the registry no longer has {staged}@{digest}")
        log.write(f"{image.label}: {moved}\n")
        try:
            registry.copy_tag(path, moved, "latest")
        except RegistryError as exc:
            why = f"{image.label} moved to {moved[:19]}, but cannot tag it latest: {exc}"
            raise TaskFailedError(why, detail=moved) from None
        log.write(f"latest: {moved}\n")
        left = registry.delete_manifest(staging_path, moved)
        if left is not None:
            log.write(f"{staged} left: {left}\n")
            return f"{moved}; staging kept: {left}"
        log.write(f"{staged} deleted\n")
    return f"{moved}; staging deleted"


def unstage(run: Shared, image: PlannedImage, held: str | None) -> str | None:
    """Delete the staged manifest an earlier run promoted and left (HELD: its staging
    reference, held to its digest); one the registry keeps is named, not failed."""
    registry = run.registry_for("removing staged images")
    staged, digest = staged_reference(held or "")
    if digest is None:
        raise TaskFailedError(f"the plan names no staged digest for {image.name}")
    _, _, staging_path = run.reference(staged)
    with run.log(image.name, f"unstage {staged}@{digest}") as log:
        left = registry.delete_manifest(staging_path, digest)
        log.write(f"{staged} {'left: ' + left if left else 'deleted'}\n")
    return f"staging kept: {left}" if left else "staging deleted"


def tag_latest(run: Shared, image: PlannedImage) -> str | None:
    """Point `latest` at the published version's manifest (the plan found it elsewhere)."""
    registry = run.registry_for("moving latest")
    _, tag, path = run.reference(image.label)
    with run.log(image.name, f"tag-latest {image.label}") as log:
        try:
            digest = registry.copy_tag(path, tag, "latest")
        except RegistryError as exc:
            raise TaskFailedError(f"cannot tag it latest: {exc}") from None
        if digest is None:
            raise TaskFailedError(f"the registry no longer has {image.label}")
        log.write(f"latest: {digest} (set in the registry to the manifest of {tag})\n")
    return digest


def _already_published(
    run: Shared, registry: Registry, image: PlannedImage, ref: tuple[str, str], log: IO[str]
) -> bool:
    """Whether the registry has IMAGE's version (REF: repository path and tag) with the
    content built here; a version published with other content is never pushed over (the
    step fails)."""
    path, tag = ref
    try:
        published = registry.config_digest(path, tag)
    except RegistryError as exc:
        raise TaskFailedError(f"cannot check {image.label} before pushing: {exc}") from None
    if published is None:
        return False
    built = run.daemon.image_id(image.label)
    if published == built:
        return True
    why = (
        f"{image.label} is already published with other content (image {published[:19]}, "
        f"built here {built[:19]}): a published version is never pushed over; give the "
        f"image a new version (dockerpkg update {image.name})"
    )
    log.write(why + "\n")
    raise TaskFailedError(why)


def push_tag(run: Shared, repository: str, tag: str, log: IO[str]) -> str | None:
    """Push REPOSITORY:TAG from the daemon, through its registry's gate (a push the
    registry limited or failed is pushed again as the host's limits say; the daemon puts
    the manifest, the tag, only after every layer is there, so a push given up on leaves
    no tag half-published); the digest pushed, if the daemon says."""
    settings = run.settings
    return gated(
        run,
        repository,
        log,
        lambda: run.daemon.push(
            repository,
            tag,
            settings.credentials,
            log,
            run.cancel,
            timeout=settings.transfer_timeout,
        ),
    )
