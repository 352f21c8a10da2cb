"""Where an image of a build plan stands: published, built locally, or to build (docker-pkg's
rule), and the same rule for one platform's image of a tree with platforms."""

from __future__ import annotations

import enum

from dockerpkg.core.observed import Observed
from dockerpkg.core.plan import Reason


class State(enum.Enum):
    PUBLISHED = "published"
    BUILT = "built"
    TO_BUILD = "to_build"
    STAGED = "staged"  # all_or_nothing: an earlier run staged it with the tree's identity


def image_state(label: str, observed: Observed, pull: bool) -> tuple[State, Reason]:
    """docker-pkg's rule: published, else built locally, else to build; --no-pull asks the
    daemon first, so an image missing locally is rebuilt even when it is published."""
    return state_of(label, observed, pull, published=label in observed.published)


def state_of(
    label: str, observed: Observed, pull: bool, *, published: bool
) -> tuple[State, Reason]:
    """image_state with whether the image counts as PUBLISHED given: a platform's image
    counts as published when the index under its image's version lists its platform, not
    when its own tag exists."""
    if observed.offline:
        return State.TO_BUILD, Reason.OFFLINE
    local = label in observed.local
    if not local and (not pull or not published):
        return State.TO_BUILD, Reason.NOT_IN_REGISTRY if pull else Reason.NOT_BUILT_LOCALLY
    if published:
        return State.PUBLISHED, Reason.NOT_IN_REGISTRY
    return State.BUILT, Reason.BUILT_LOCALLY_NOT_PUBLISHED
