"""What each step of a build plan waits for: the one rule every executor follows.

- A build stage and a build wait for the pulls of the image's base images and published
  parents, and for each parent built in the run to be verified (built, where it is not
  verified); a build also waits for its own build stage.
- A verification waits for its build; a publication (or a staging push) for its
  verification and for the pushes of the image's parents, so nothing is pushed before what
  it is built on.
- A promotion (all-or-nothing publishing) waits for its parents' promotions (an index
  image's, for those of the images it depends on: its parents are its platform images,
  which are staged, never promoted alone). The first
  one of the plan without a promoted parent is the barrier: it waits for every step of the
  run that makes or stages an image (OpRule.before_promotion in dockerpkg.core.ops), and
  every other promotion without a promoted parent waits for it. So nothing moves until all
  of them succeeded (one failure skips the barrier, hence every promotion), while the needs
  stay linear in the tree (every promotion waiting for every such step made plans
  quadratic: 53 MB of JSON at 800 images) and the promotions after the barrier still run
  side by side.
- An index step (several platforms) waits for the pushes of its platform images and for
  the index steps of the index images it depends on, so no index lists an image built on a
  platform its parent's index does not list yet.
- A build of an image without platforms also waits for the pulls for one platform of its
  base's tag by that tag: such a pull moves the shared tag onto that platform's image until
  it ends (the executor puts it back), and the build reads the tag.
- A `tag-latest` waits for its image's index step, where the plan has one (the index puts
  the version tag that `latest` is then set to); pulls wait for nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import attrs

from dockerpkg.core.ops import OPS
from dockerpkg.core.plan import Op, PlannedImage, Step, StepKey


def with_needs(steps: Sequence[Step], images: Iterable[PlannedImage]) -> tuple[Step, ...]:
    """STEPS, each with its `needs` worked out from the others and the plan's IMAGES."""
    by_name = {image.name: image for image in images}
    keys = {step.key for step in steps}
    making = tuple(step.key for step in steps if OPS[step.op].before_promotion)
    # The barrier: the first promotion (parents come first) with no promoted parent, so
    # no promotion can wait for itself through it.
    first = next(
        (s.key for s in steps if s.op is Op.PROMOTE and not _promoted(s, by_name, keys)), None
    )
    # A pull is found by the label it pulls, for a base pinned to a digest by the base, and
    # for a staged parent by the label it is named as (its detail). A pull for one platform
    # only by what it is named as: the label it pulls is every platform's.
    pulls = {
        name: s.key
        for s in steps
        if s.op is Op.PULL
        for name in ((s.image, s.detail) if s.platform else (s.image, s.label, s.detail))
        if name is not None
    }
    # A pull for one platform by a shared tag (no digest known), by the tag.
    by_tag: dict[str, list[StepKey]] = {}
    for s in steps:
        if s.op is Op.PULL and s.platform and s.label and "@" not in s.label:
            by_tag.setdefault(s.label, []).append(s.key)
    # An image's push: its publication, or its staging push (all_or_nothing).
    pushes = {s.image: s.key for s in steps if OPS[s.op].pushes_image}
    return tuple(
        attrs.evolve(step, needs=_promotion_needs(step, by_name, keys, making, first))
        if step.op is Op.PROMOTE
        else attrs.evolve(step, needs=_needs(step, by_name, keys, (pulls, pushes, by_tag)))
        for step in steps
    )


def _promotion_needs(
    step: Step,
    images: Mapping[str, PlannedImage],
    keys: set[StepKey],
    making: tuple[StepKey, ...],
    first: StepKey | None,
) -> tuple[StepKey, ...]:
    parents = _promoted(step, images, keys)
    if step.key == first:
        return making
    # A parent's promotion already waits for the barrier: naming it again adds nothing.
    return parents or ((first,) if first is not None else ())


def _promoted(
    step: Step, images: Mapping[str, PlannedImage], keys: set[StepKey]
) -> tuple[StepKey, ...]:
    """The promotions of the plan (KEYS) of STEP's image's parents (an index image's: of
    the index images it depends on, its parents being its platform images)."""
    image = images.get(step.image)
    names = () if image is None else image.depends if image.platforms else image.parents
    return tuple(key for p in names if (key := StepKey(Op.PROMOTE, p)) in keys)


def _needs(
    step: Step,
    images: Mapping[str, PlannedImage],
    keys: set[StepKey],
    found_by: tuple[Mapping[str, StepKey], Mapping[str, StepKey], Mapping[str, Sequence[StepKey]]],
) -> tuple[StepKey, ...]:
    """STEP's needs (not a promotion's); FOUND_BY: the pulls by the names they pull, the
    images' pushes by image, and the pulls for one platform by the shared tag they pull."""
    pulls, pushes, by_tag = found_by
    image = images.get(step.image)
    found: list[StepKey] = []
    if step.op in (Op.BUILD_STAGE, Op.BUILD) and image is not None:
        labels = [*image.bases, *(images[p].label for p in image.parents if p in images)]
        found += [pulls[label] for label in labels if label in pulls]
        for parent in image.parents:
            verified, built = StepKey(Op.VERIFY, parent), StepKey(Op.BUILD, parent)
            found += [verified] if verified in keys else [built] if built in keys else []
        if step.op is Op.BUILD:
            found += [k for k in (StepKey(Op.BUILD_STAGE, step.image),) if k in keys]
        if image.platform is None:
            found += [k for base in image.bases for k in by_tag.get(base, ())]
    elif step.op is Op.VERIFY:
        found += [k for k in (StepKey(Op.BUILD, step.image),) if k in keys]
    elif OPS[step.op].pushes_image and image is not None:
        found += [k for k in (StepKey(Op.VERIFY, step.image),) if k in keys]
        found += [pushes[p] for p in image.parents if p in pushes]
    elif step.op is Op.INDEX and image is not None:
        # An index image's parents are its platform images: it lists their pushes.
        found += [pushes[p] for p in image.parents if p in pushes]
        found += [k for d in image.depends if (k := StepKey(Op.INDEX, d)) in keys]
    elif step.op is Op.TAG_LATEST:
        found += [k for k in (StepKey(Op.INDEX, step.image),) if k in keys]
    return tuple(dict.fromkeys(found))
