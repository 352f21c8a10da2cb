"""An earlier run's staged image, named by a saved plan, is what the plan says it is.

A plan promotes (or builds on) a manifest an earlier run left in the staging repository by the
digest it names. The planner chose that digest because its image records the tree's build
identity; a plan file is only a claim, so before moving or pulling that manifest the executor
reads its identity label again and requires the one the plan gives the image.
"""

from __future__ import annotations

from dockerpkg.core.definition import IDENTITY_LABEL
from dockerpkg.core.labels import repository_path, split_label
from dockerpkg.core.staging import staged_reference
from dockerpkg.effects.ports import Registry
from dockerpkg.effects.registry import RegistryError
from dockerpkg.effects.tasks import TaskFailedError


def require_identity(
    registry: Registry | None, host: str | None, reference: str, expected: str | None
) -> None:
    """Fail unless REFERENCE (a staging label as the plan gives it), when held to a digest
    (an earlier run's staging), is an image in registry HOST recording the build identity
    EXPECTED (the plan's definition of the image). A reference without a digest is this
    run's own staging: nothing to check."""
    staged, digest = staged_reference(reference)
    if digest is None:
        return
    if registry is None:
        # The API gives every publishing run its registry client: this is a caller's bug.
        raise TaskFailedError("checking staged images needs the registry client of the run")
    if not expected:
        raise TaskFailedError(f"the plan gives no build identity to check {reference} against")
    path = repository_path(split_label(staged)[0], host)
    try:
        labels = registry.image_labels(path, digest)
    except RegistryError as exc:
        raise TaskFailedError(f"cannot read the build identity of {reference}: {exc}") from None
    if labels is None:
        raise TaskFailedError(f"the registry has no image at {reference}")
    recorded = labels.get(IDENTITY_LABEL)
    if recorded != expected:
        shown = recorded[:19] if recorded else "none"
        raise TaskFailedError(
            f"refused: {reference} records build identity {shown}, not the plan's "
            f"{expected[:19]} (not the image the plan was made for)"
        )
