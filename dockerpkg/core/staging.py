"""All-or-nothing publishing: where a run stages what it pushes, and the promotion that moves
the tags users pull only once every image of the run is built, verified and pushed.

Each image is pushed to a staging repository beside its own (`NAMESPACE/dockerpkg-staging/
NAME`, same tag), never to its own repository: Docker's distribution registry deletes
manifests by digest only, and deleting a staging tag kept in the image's own repository would
delete the version tag with it. Promotion mounts the blobs into the image's repository (or
copies them where the registry will not mount), puts the manifest under the version tag and
`latest`, and deletes the staged manifest. It takes the manifest by digest (the one the run
pushed, or the one the plan observed), never whatever the staging tag holds by then; a later
run deletes a staged manifest a promotion moved but left (`unstage`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import attrs

from dockerpkg.core.config import Config
from dockerpkg.core.labels import join_repository
from dockerpkg.core.plan import Op, Plan, Reason, Step
from dockerpkg.core.tree import Tree

STAGING = "dockerpkg-staging"


@attrs.frozen
class Staged:
    """What an earlier run left under an image's staging reference, as observed."""

    identity: str = ""  # the build identity its label records ("" when none)
    digest: str | None = None  # the staged manifest's digest
    # The manifest digest of the image's version tag in its own repository, when published.
    published: str | None = None


def by_digest(label: str, digest: str | None) -> str:
    """LABEL held to the manifest DIGEST (`NAME:TAG@DIGEST`), when one is known."""
    return label if digest is None else f"{label}@{digest}"


def staged_reference(detail: str) -> tuple[str, str | None]:
    """A staging reference as a plan gives it: its label, and its digest when held to one."""
    label, _, digest = detail.partition("@")
    return label, digest or None


def staging_repository(registry: str | None, namespace: str | None, name: str) -> str:
    """Where an image is staged: its namespace's staging area, under its own name."""
    return join_repository(registry, namespace, STAGING, name)


def staging_label(registry: str | None, namespace: str | None, name: str, tag: str) -> str:
    return f"{staging_repository(registry, namespace, name)}:{tag}"


def staging_path(path: str, namespace: str | None) -> str:
    """The registry path of the staging repository of the image at registry path PATH."""
    prefix = f"{namespace.strip('/')}/" if namespace else ""
    return join_repository(namespace, STAGING, path.removeprefix(prefix))


def promotion_steps(steps: list[Step], labels: Mapping[str, str]) -> list[Step]:
    """One promote step per image the run stages (LABELS: name -> its label), in the order of
    the stagings (parents first); each waits for every step that makes an image (see
    dockerpkg.core.needs)."""
    return [
        Step(Op.PROMOTE, step.image, Reason.ALL_PUBLISHED, labels[step.image], step.label)
        for step in steps
        if step.op is Op.STAGE
    ]


def promotions(
    tree: Tree,
    config: Config,
    steps: Sequence[Step],
    earlier: tuple[Sequence[str], Mapping[str, Staged]],
) -> list[Step]:
    """A promotion for every image the run stages (stage steps of STEPS) and for every
    image an earlier run staged (EARLIER: their names, and what was observed staged by
    label), held to the digest whose identity was read; parents first."""
    names, staged = earlier
    labels = {name: tree.images[name].label for name in tree.order}
    found = {step.image: step for step in promotion_steps(list(steps), labels)}
    for name in names:
        image = tree.images[name]
        held = by_digest(
            staging_label(config.registry, config.namespace, name, image.tag),
            staged[image.label].digest,
        )
        found[name] = Step(Op.PROMOTE, name, Reason.STAGED_IN_EARLIER_RUN, image.label, held)
    return [found[name] for name in tree.order if name in found]


def unstaging(
    tree: Tree, config: Config, published: Sequence[str], staged: Mapping[str, Staged]
) -> list[Step]:
    """An unstage step for every PUBLISHED image (names) whose staging reference still holds
    the manifest its version tag holds: an earlier run promoted it, and was killed or failed
    before deleting it. A staged manifest of other content was not promoted from there:
    left alone."""
    steps = []
    for name in published:
        image = tree.images[name]
        found = staged.get(image.label)
        if found is not None and found.digest is not None and found.digest == found.published:
            where = staging_label(config.registry, config.namespace, name, image.tag)
            held = by_digest(where, found.digest)
            steps.append(Step(Op.UNSTAGE, name, Reason.PROMOTED_IN_EARLIER_RUN, held))
    return steps


def staged_labels(plan: Plan) -> Mapping[str, str]:
    """Real label -> staging label, for every image the plan stages or promotes: what a
    builder pulls when it needs one of them before the promotion."""
    return {
        step.label: step.detail
        for step in plan.steps
        if step.op is Op.PROMOTE and step.label is not None and step.detail is not None
    }
