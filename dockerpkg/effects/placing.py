"""Where a run's steps go, as the scheduler (dockerpkg.effects.scheduler) keeps track of
it: its builders (workers) and their slots, the builder each image's steps run on, and the
attempts started on them. The choices are the core's (dockerpkg.core.placement)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Protocol

import attrs

from dockerpkg.core import placement
from dockerpkg.core.ops import OPS, Where
from dockerpkg.core.placement import BuilderView
from dockerpkg.core.plan import Op, Plan, PlannedImage, Step, StepKey
from dockerpkg.core.report import Move
from dockerpkg.effects.ledger import Ledger


class StepRunner(Protocol):
    """What runs steps on one builder (dockerpkg.effects.executor.Executor)."""

    def step_runner(self, step: Step, image: PlannedImage | None) -> Callable[[], str | None]: ...

    def pull(
        self, label: str, log_name: str, named: str | None = None, platform: str | None = None
    ) -> str | None: ...

    def cancel(self) -> None: ...

    def reachable(self) -> bool: ...

    def finish(self) -> None: ...


@attrs.define(eq=False)
class Worker:
    """One builder of the run: what runs its steps, and what runs on it now."""

    name: str
    runner: StepRunner
    slots: int
    push_slots: int
    building: int = 0  # builds and verifications running (they share the build slots)
    pushing: int = 0
    alive: bool = True
    held: set[str] = attrs.field(factory=set)  # labels it holds: pulled or built in this run
    # The platforms it builds (the plan's builder of its name says); empty: any.
    platforms: frozenset[str] = frozenset()

    def view(self) -> BuilderView:
        return BuilderView(
            self.name,
            self.slots,
            self.push_slots,
            self.building,
            self.pushing,
            self.alive,
            frozenset(self.held),
            self.platforms,
        )


@attrs.define(eq=False)
class Attempt:
    """One start of a step, on a builder (or, a pull, on all of them)."""

    step: Step
    worker: Worker | None  # None: a pull, on every live builder
    started: float
    epoch: int  # the image's epoch when it started; a moved image's old attempts are stale
    fetched: tuple[str, ...] = ()  # parents it pulls from the registry first


class Placer:
    """Where a run's steps go: the builder each image's steps run on, the slots they take,
    and (with several builders) what each step ran on and how long a build waited for its
    parents. Placement itself is the core's (dockerpkg.core.placement)."""

    def __init__(
        self,
        plan: Plan,
        workers: Sequence[Worker],
        ledger: Ledger,
        *,
        pull_jobs: int,
        several: bool,
    ) -> None:
        self.workers = list(workers)
        # The platforms each builder builds, as the plan records them (by the builder's name).
        declared = {b.url: frozenset(b.platforms) for b in plan.builders}
        for worker in self.workers:
            worker.platforms = worker.platforms or declared.get(worker.name, frozenset())
        self.pull_jobs = pull_jobs
        self.several = several
        self.ledger = ledger
        self.images = {i.name: i for i in plan.images}
        self.built = frozenset(s.image for s in plan.steps if s.op is Op.BUILD)
        # Image -> the step that pushes it (published, or staged): once it succeeded,
        # another builder can pull the image from the registry.
        self.pushes = {s.image: s.key for s in plan.steps if OPS[s.op].pushes_image}
        self.where: dict[str, Worker] = {}  # image -> the builder its build runs or ran on
        self.epoch: dict[str, int] = {}
        self.moves: list[Move] = []
        self.builder_of: dict[StepKey, str] = {}  # only with several builders
        self.waited_of: dict[StepKey, float] = {}
        self.pulling = 0

    def views(self) -> list[BuilderView]:
        return [w.view() for w in self.workers]

    def worker(self, name: str) -> Worker:
        return next(w for w in self.workers if w.name == name)

    def place(self, step: Step) -> Attempt | None:
        """An attempt of STEP on a free builder, or None if none may take it now."""
        where = OPS[step.op].where
        if where is Where.EVERY_BUILDER:
            if self.pulling >= self.pull_jobs:
                return None
            self.pulling += 1  # a pull runs on every live builder at once
            return Attempt(step, None, time.monotonic(), 0)
        if where is Where.ANY_BUILDER:
            name = placement.registry_builder(self.views())
            return None if name is None else self._take(self.worker(name), step)
        worker = self.where.get(step.image)
        if worker is None:
            # The image's first step (its build, or a step building for it) chooses.
            return self._place_build(step)
        # Its other steps run on the builder that took the first.
        view = worker.view()
        if not (view.may_push if OPS[step.op].push_slot else view.may_build):
            return None
        return self._take(worker, step)

    def release(self, attempt: Attempt) -> None:
        """ATTEMPT is over: its slot is free again."""
        worker = attempt.worker
        if worker is None:
            self.pulling -= 1
        elif OPS[attempt.step.op].push_slot:
            worker.pushing -= 1
        else:
            worker.building -= 1

    def current(self, attempt: Attempt) -> bool:
        """Whether ATTEMPT still counts: its image has not moved since it started."""
        return attempt.epoch == self.epoch.get(attempt.step.image, 0)

    def _take(self, worker: Worker, step: Step) -> Attempt:
        if OPS[step.op].push_slot:
            worker.pushing += 1
        else:
            worker.building += 1
        if self.several:
            self.builder_of[step.key] = worker.name
        return Attempt(step, worker, time.monotonic(), self.epoch.get(step.image, 0))

    def _place_build(self, step: Step) -> Attempt | None:
        image = self.images[step.image]
        published = frozenset(p for p in image.parents if self.ledger.succeeded(self.pushes.get(p)))
        name = placement.choose_builder(
            image,
            self.images,
            self.views(),
            built=self.built,
            where={i: w.name for i, w in self.where.items()},
            published=published,
        )
        if name is None:
            return None
        worker = self.worker(name)
        self.where[image.name] = worker
        for index, move in enumerate(self.moves):
            if move.image == image.name and move.to is None and move.lost != worker.name:
                self.moves[index] = attrs.evolve(move, to=worker.name)
        attempt = self._take(worker, step)
        attempt.fetched = placement.parents_to_fetch(
            image, self.images, frozenset(worker.held), several=self.several
        )
        if self.several:
            self.waited_of[StepKey(Op.BUILD, image.name)] = self._parent_wait(step, image, worker)
        return attempt

    def _parent_wait(self, step: Step, image: PlannedImage, worker: Worker) -> float:
        """Seconds between IMAGE's other needs (pulls) being met and its parents being ready
        for WORKER: verified there, or pushed."""
        parents = placement.parents_in_run(image, self.built)
        if not parents:
            return 0.0
        begin, done_at = self.ledger.begin, self.ledger.done_at

        def ready_at(parent: str) -> float:
            here = self.where.get(parent) is worker
            key = StepKey(Op.VERIFY, parent) if here else self.pushes.get(parent)
            return begin if key is None else done_at.get(key, begin)

        ready = max(ready_at(p) for p in parents)
        steps = self.ledger.steps
        others = [done_at.get(n, begin) for n in step.needs if steps[n].op is Op.PULL]
        return max(0.0, ready - max(others, default=begin))
