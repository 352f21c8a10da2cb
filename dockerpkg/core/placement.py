"""Where a run places its steps among its builders, and what moves off a lost one.

Pure choices over a snapshot of the run that the scheduler (dockerpkg.effects.scheduler)
takes each time it looks for work: which builder builds a ready image, which one runs a
registry-only step, which parents a builder fetches from the registry first, and what
happens to the images of a builder that stopped answering. A run on one builder is a run of
one: nothing is fetched (the plan pulls what it needs) and nothing moves.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence

import attrs

from dockerpkg.core.ops import OPS
from dockerpkg.core.plan import PlannedImage, StepKey
from dockerpkg.core.report import Outcome

# Times one image may be taken off a lost builder and built again on another.
MAX_MOVES = 2


@attrs.frozen
class BuilderView:
    """One builder as placement sees it at one instant."""

    name: str
    slots: int  # builds and verifications at once (they share them)
    push_slots: int
    building: int = 0
    pushing: int = 0
    alive: bool = True
    held: frozenset[str] = frozenset()  # labels it holds: pulled or built in this run
    # Several platforms: the platforms the plan says it builds; empty: any (not asked).
    platforms: frozenset[str] = frozenset()

    @property
    def may_build(self) -> bool:
        return self.alive and self.building < self.slots

    @property
    def may_push(self) -> bool:
        return self.alive and self.pushing < self.push_slots

    def builds(self, platform: str | None) -> bool:
        """Whether it may build for PLATFORM (None: an image of no platform: any builder)."""
        return platform is None or not self.platforms or platform in self.platforms


def parents_in_run(image: PlannedImage, built: frozenset[str]) -> tuple[str, ...]:
    """IMAGE's parents that the run builds (BUILT: the names of images with a build step)."""
    return tuple(p for p in image.parents if p in built)


def choose_builder(
    image: PlannedImage,
    images: Mapping[str, PlannedImage],
    builders: Sequence[BuilderView],
    *,
    built: frozenset[str],
    where: Mapping[str, str],
    published: frozenset[str],
) -> str | None:
    """The builder to build IMAGE on now, or None if none may take it yet.

    A builder may take it when it builds IMAGE's platform (a platform image), and each of
    its parents that the run builds was built there (WHERE: image -> builder) or is
    published (PUBLISHED: image names), so it can pull it. Among those with a free slot:
    the one holding most of its parents, then the least loaded, then the first named.
    """
    parents = parents_in_run(image, built)
    labels = [images[p].label for p in image.parents if p in images]

    def may(builder: BuilderView) -> bool:
        return builder.builds(image.platform) and all(
            where.get(p) == builder.name or p in published for p in parents
        )

    free = [(i, b) for i, b in enumerate(builders) if b.may_build and may(b)]
    if not free:
        return None
    _, chosen = min(
        free,
        key=lambda item: (
            -sum(label in item[1].held for label in labels),
            item[1].building / item[1].slots,
            item[0],
        ),
    )
    return chosen.name


def registry_builder(builders: Sequence[BuilderView]) -> str | None:
    """The builder whose registry client runs a registry-only step (`tag-latest`): the first
    with a free push slot."""
    return next((b.name for b in builders if b.may_push), None)


def pull_targets(platform: str | None, builders: Sequence[BuilderView]) -> tuple[str, ...]:
    """The live builders a pull (for PLATFORM, if any) runs on: every one that builds that
    platform, or every live one when none of them says it does (the plan checked it)."""
    alive = [b for b in builders if b.alive]
    building = [b.name for b in alive if b.builds(platform)]
    return tuple(building) if building else tuple(b.name for b in alive)


def parents_to_fetch(
    image: PlannedImage, images: Mapping[str, PlannedImage], held: frozenset[str], *, several: bool
) -> tuple[str, ...]:
    """The labels of IMAGE's parents its builder pulls before building it: with SEVERAL
    builders, those it does not hold (built elsewhere, or published before the run). With
    one, none: the plan's own pulls fetch what the daemon lacks."""
    if not several:
        return ()
    return tuple(
        images[p].label for p in image.parents if p in images and images[p].label not in held
    )


class MoveKind(enum.Enum):
    MOVE = "move"  # built again on another builder: its results so far are dropped
    GIVE_UP = "give_up"  # moved MAX_MOVES times already: its next step fails


@attrs.frozen
class MoveChoice:
    """What becomes of one image of a lost builder."""

    kind: MoveKind
    image: str
    keys: tuple[StepKey, ...]  # MOVE: the steps to run again; GIVE_UP: the step that fails


def unfinished(chain: Sequence[StepKey], results: Mapping[StepKey, Outcome]) -> bool:
    """Whether an image (its steps CHAIN) still needs its builder: not yet pushed (published
    or staged), and nothing of it failed for a reason of its own (moving would not help)."""
    if any(results[k] is not Outcome.SUCCEEDED for k in chain if k in results):
        return False
    return not any(OPS[k.op].pushes_image for k in chain if k in results)


def moves_off(
    lost: str,
    where: Mapping[str, str],
    chains: Mapping[str, Sequence[StepKey]],
    results: Mapping[StepKey, Outcome],
    moved: Mapping[str, int],
) -> tuple[MoveChoice, ...]:
    """What happens to each image placed on the builder LOST (WHERE: image -> builder) that
    is unfinished: moved elsewhere, or given up once moved MAX_MOVES times (MOVED)."""
    choices = []
    for image, placed in where.items():
        chain = chains[image]
        if placed != lost or not unfinished(chain, results):
            continue
        if moved.get(image, 0) + 1 > MAX_MOVES:
            first = next(k for k in chain if results.get(k) is not Outcome.SUCCEEDED)
            choices.append(MoveChoice(MoveKind.GIVE_UP, image, (first,)))
        else:
            choices.append(MoveChoice(MoveKind.MOVE, image, tuple(chain)))
    return tuple(choices)
