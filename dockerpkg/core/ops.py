"""What each kind of step is and does: the one table the planner's needs, the recheck of a
saved plan, the scheduler, placement and the reports read, so a new op is described once.

Each row says where a step runs and which slot it takes, whether it follows an image's
build, whether it pushes the image itself, whether it publishes (moves what users pull),
which steps the all_or_nothing barrier waits for, which steps an image published since its
plan was made no longer needs, and the op a report counts it under.
"""

from __future__ import annotations

import enum
import types
from collections.abc import Mapping

import attrs

from dockerpkg.core.plan import Op


class Where(enum.Enum):
    """Where the scheduler runs a step."""

    EVERY_BUILDER = "every_builder"  # a pull: on every live builder at once, in a pull slot
    IMAGE_BUILDER = "image_builder"  # the builder its image's first step chose
    ANY_BUILDER = "any_builder"  # registry only: the registry client of any live builder
    NOT_SCHEDULED = "not_scheduled"  # prune and update steps: carried out by their own verbs


@attrs.frozen
class OpRule:
    """What one op is and does (see the module's docstring)."""

    where: Where
    # Takes one of its builder's push slots (else a build slot, or a pull slot for a pull).
    push_slot: bool = False
    # Comes after its image's build on the same builder: with no builder left, it is skipped
    # through what it needs rather than failed itself.
    after_build: bool = False
    # Pushes the image's own content to the registry (under its label or its staging
    # reference): once it succeeded, another builder can pull the image from there.
    pushes_image: bool = False
    # Puts the image's version where users pull it: what `apply` asks the registry about
    # before running a saved plan.
    publishes: bool = False
    # Makes or stages an image of the run: the first promotion (the barrier) waits for every
    # such step, so nothing moves until all of them succeeded.
    before_promotion: bool = False
    # Makes or publishes an image: an image published since its plan was made needs none.
    dropped_once_published: bool = False
    # The op reports count and show it under (a staging push is reported as a publication).
    reported_as: Op | None = None


OPS: Mapping[Op, OpRule] = types.MappingProxyType(
    {
        Op.PULL: OpRule(Where.EVERY_BUILDER),
        Op.BUILD_STAGE: OpRule(
            Where.IMAGE_BUILDER, before_promotion=True, dropped_once_published=True
        ),
        Op.BUILD: OpRule(Where.IMAGE_BUILDER, before_promotion=True, dropped_once_published=True),
        Op.VERIFY: OpRule(
            Where.IMAGE_BUILDER,
            after_build=True,
            before_promotion=True,
            dropped_once_published=True,
        ),
        Op.STAGE: OpRule(
            Where.IMAGE_BUILDER,
            push_slot=True,
            after_build=True,
            pushes_image=True,
            before_promotion=True,
            dropped_once_published=True,
            reported_as=Op.PUBLISH,
        ),
        Op.PUBLISH: OpRule(
            Where.IMAGE_BUILDER,
            push_slot=True,
            after_build=True,
            pushes_image=True,
            publishes=True,
            before_promotion=True,
            dropped_once_published=True,
        ),
        Op.TAG_LATEST: OpRule(Where.ANY_BUILDER, push_slot=True, dropped_once_published=True),
        # A promotion runs where its image was built (or, staged by an earlier run, where its
        # first step is placed) and takes a build slot there.
        Op.PROMOTE: OpRule(Where.IMAGE_BUILDER, publishes=True, dropped_once_published=True),
        Op.UNSTAGE: OpRule(Where.ANY_BUILDER, push_slot=True),
        # An index moves what users pull, but its version tag existing says nothing of
        # whether it lists every platform: a saved plan's recheck leaves it in, and putting
        # the same index again changes nothing.
        Op.INDEX: OpRule(Where.ANY_BUILDER, push_slot=True),
        Op.REMOVE: OpRule(Where.NOT_SCHEDULED),
        Op.KEEP: OpRule(Where.NOT_SCHEDULED),
        Op.WRITE_CHANGELOG: OpRule(Where.NOT_SCHEDULED),
    }
)


def reported_as(op: Op) -> Op:
    """The op reports count and show OP under."""
    return OPS[op].reported_as or op
