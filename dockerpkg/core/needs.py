"""What each step of a build plan waits for: the one rule every executor follows.

- A build stage and a build wait for the pulls of the image's base images and published
  parents, and for each parent built in the run to be verified (built, where it is not
  verified); a build also waits for its own build stage.
- A verification waits for its build; a publication for its verification and for the
  publications of the image's parents, so nothing is published before what it is built on.
- A promotion (all-or-nothing publishing) waits for its parents' promotions. The first
  one of the plan without a promoted parent is the barrier: it waits for every step of the
  run that makes an image, and every other promotion without a promoted parent waits for
  it. So nothing moves until all of them succeeded (one failure skips the barrier, hence
  every promotion), while the needs stay linear in the tree (every promotion waiting for
  every such step made plans quadratic: 53 MB of JSON at 800 images) and the promotions
  after the barrier still run side by side.
- Pulls and `tag-latest` wait for nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import attrs

from dockerpkg.core.plan import Op, PlannedImage, Step, step_key


def with_needs(steps: Sequence[Step], images: Iterable[PlannedImage]) -> tuple[Step, ...]:
    """STEPS, each with its `needs` worked out from the others and the plan's IMAGES."""
    by_name = {image.name: image for image in images}
    keys = {step.key for step in steps}
    making = tuple(step.key for step in steps if step.op in _MAKING)
    # The barrier: the first promotion (parents come first) with no promoted parent, so
    # no promotion can wait for itself through it.
    first = next(
        (s.key for s in steps if s.op is Op.PROMOTE and not _promoted(s, by_name, keys)), None
    )
    # A pull is found by the label it pulls, for a base pinned to a digest by the base, and
    # for a staged parent by the label it is named as (its detail).
    pulls = {
        name: s.key
        for s in steps
        if s.op is Op.PULL
        for name in (s.image, s.label, s.detail)
        if name is not None
    }
    return tuple(
        attrs.evolve(step, needs=_promotion_needs(step, by_name, keys, making, first))
        if step.op is Op.PROMOTE
        else attrs.evolve(step, needs=_needs(step, by_name, keys, pulls))
        for step in steps
    )


_MAKING = frozenset({Op.BUILD_STAGE, Op.BUILD, Op.VERIFY, Op.PUBLISH})


def _promotion_needs(
    step: Step,
    images: Mapping[str, PlannedImage],
    keys: set[str],
    making: tuple[str, ...],
    first: str | None,
) -> tuple[str, ...]:
    parents = _promoted(step, images, keys)
    if step.key == first:
        return making
    # A parent's promotion already waits for the barrier: naming it again adds nothing.
    return parents or ((first,) if first is not None else ())


def _promoted(step: Step, images: Mapping[str, PlannedImage], keys: set[str]) -> tuple[str, ...]:
    """The promotions of the plan (KEYS) of STEP's image's parents."""
    image = images.get(step.image)
    names = () if image is None else image.parents
    return tuple(key for p in names if (key := step_key(Op.PROMOTE, p)) in keys)


def _needs(
    step: Step, images: Mapping[str, PlannedImage], keys: set[str], pulls: Mapping[str, str]
) -> tuple[str, ...]:
    image = images.get(step.image)
    found: list[str] = []
    if step.op in (Op.BUILD_STAGE, Op.BUILD) and image is not None:
        labels = [*image.bases, *(images[p].label for p in image.parents if p in images)]
        found += [pulls[label] for label in labels if label in pulls]
        for parent in image.parents:
            verified, built = step_key(Op.VERIFY, parent), step_key(Op.BUILD, parent)
            found += [verified] if verified in keys else [built] if built in keys else []
        if step.op is Op.BUILD:
            found += [k for k in (step_key(Op.BUILD_STAGE, step.image),) if k in keys]
    elif step.op is Op.VERIFY:
        found += [k for k in (step_key(Op.BUILD, step.image),) if k in keys]
    elif step.op is Op.PUBLISH and image is not None:
        found += [k for k in (step_key(Op.VERIFY, step.image),) if k in keys]
        found += [k for p in image.parents if (k := step_key(Op.PUBLISH, p)) in keys]
    return tuple(dict.fromkeys(found))
