"""A saved plan, brought up to date with what was published since it was made.

A saved plan can wait for hours before `apply`; meanwhile another run may publish some of its
images. Building them again would push a second image under a version already published, so
their steps go, and the images built from them pull them instead.
"""

from __future__ import annotations

import attrs

from dockerpkg.core.bases import with_records
from dockerpkg.core.needs import with_needs
from dockerpkg.core.ops import OPS
from dockerpkg.core.plan import Op, Plan, Reason, Step

# The steps that put an image's version where users pull it (OpRule.publishes) include the
# promotion of what an earlier run staged: a plan saved hours ago must not move it over
# another run's. A published image needs none of the steps that make or publish it
# (OpRule.dropped_once_published).


def publishing_labels(plan: Plan) -> tuple[str, ...]:
    """The labels PLAN would publish: what to ask the registry about before applying it
    (not those of a tree with platforms, see `_judged`)."""
    labels = _labels(plan)
    judged = _judged(plan)
    return tuple(
        dict.fromkeys(
            labels[s.image] for s in plan.steps if OPS[s.op].publishes and s.image in judged
        )
    )


def _judged(plan: Plan) -> frozenset[str]:
    """The images a tag existing since says are published. Not a platform image: its tag
    is pushed over until an index lists it, so an earlier run's build left under it (its
    index never put) is not published. Not an index image: its version tag may be an index
    lacking a platform; its index step (or promotion) stays."""
    return frozenset(
        image.name for image in plan.images if image.platform is None and not image.platforms
    )


def _labels(plan: Plan) -> dict[str, str]:
    """Image name -> the label users pull it by (an all_or_nothing publication pushes to a
    staging label first); one index, not a search of the images per step."""
    return {image.name: image.label for image in plan.images}


def without_published(plan: Plan, published: frozenset[str]) -> tuple[Plan, tuple[str, ...]]:
    """PLAN without the steps of the images it would publish that PUBLISHED (labels) now
    holds, and those labels; images built from one of them pull it first (unless the plan
    was made with --no-pull, which takes images from the daemon)."""
    label_of = _labels(plan)
    judged = _judged(plan)
    gone = {
        s.image: label
        for s in plan.steps
        if OPS[s.op].publishes and s.image in judged and (label := label_of[s.image]) in published
    }
    if not gone:
        return plan, ()
    kept = [s for s in plan.steps if not (OPS[s.op].dropped_once_published and s.image in gone)]
    # An image gone is pulled as published, never from an earlier run's staging.
    kept = [s for s in kept if not (s.reason is Reason.STAGED_DEPENDENCY and s.image in gone)]
    images = {i.name: i for i in plan.images}
    building = {s.image for s in kept if s.op in (Op.BUILD_STAGE, Op.BUILD)}
    pulled = {s.label for s in kept if s.op is Op.PULL}
    pulls = []
    if plan.options.pull:
        needed = sorted({p for name in building for p in images[name].parents if p in gone})
        pulls = [_pull(p, gone[p]) for p in needed if gone[p] not in pulled]
    # Pulls come first in a plan, these after the plan's own; a pull only the images gone
    # needed goes too. A staged parent's pull names the parent's label in its detail (its
    # label is the staging reference).
    wanted = {label for name in building for label in images[name].bases}
    wanted |= {images[p].label for name in building for p in images[name].parents if p in images}
    first = [
        s
        for s in kept
        if s.op is Op.PULL and (s.label in wanted or s.image in wanted or s.detail in wanted)
    ]
    rest = [s for s in kept if s.op is not Op.PULL]
    labels = tuple(label for label in gone.values() if label is not None)
    notes = tuple(
        f"published since the plan was made: {label} (not built or pushed)" for label in labels
    )
    steps = with_needs(first + pulls + rest, plan.images)
    kept_plan = attrs.evolve(plan, steps=steps, notes=plan.notes + notes)
    if any(image.records is not None for image in plan.images):
        # A parent published since is pulled now: its children record its manifest.
        kept_plan = with_records(kept_plan)
    return kept_plan, labels


def _pull(name: str, label: str) -> Step:
    """The pull of NAME, published since (LABEL): no daemon was asked about it, so a failed
    pull may go on with the daemon's copy (the executor looks for one)."""
    return Step(Op.PULL, name, Reason.PUBLISHED_DEPENDENCY, label, local_copy=True)
