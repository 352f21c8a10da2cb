"""Run a build plan on one builder (a Docker host) or several, the registry between them.

The one scheduler of build runs: a run on one builder is a run on a fleet of one. It only
orders and runs: the plan decided what to do and what each step waits for (`Step.needs`),
and dockerpkg.core.placement chooses where each ready step runs. A step starts as soon as
the steps it needs have succeeded and a slot of its kind is free; what needs a failure is
skipped with the reason.

With several builders, a step that fails on a builder which then does not answer a ping
takes that builder out of the run; the images bound to it and not yet published are built
again elsewhere (placement says which, and when to give up). Whatever was published stays
published.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, Protocol

import attrs

from dockerpkg.core import placement
from dockerpkg.core.placement import BuilderView, MoveKind
from dockerpkg.core.plan import Op, Plan, PlannedImage, Step, step_key
from dockerpkg.core.report import Move, Outcome, Report, StepOutcome
from dockerpkg.effects.tasks import (
    Interrupt,
    Listener,
    TaskCancelledError,
    TaskFailedError,
    TaskResult,
    bug_result,
    record_bugs,
)


class StepRunner(Protocol):
    """What runs steps on one builder (dockerpkg.effects.apply.Executor)."""

    def step_runner(self, step: Step, image: PlannedImage | None) -> Callable[[], str | None]: ...

    def pull(self, label: str, log_name: str, named: str | None = None) -> str | None: ...

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

    def view(self) -> BuilderView:
        return BuilderView(
            self.name,
            self.slots,
            self.push_slots,
            self.building,
            self.pushing,
            self.alive,
            frozenset(self.held),
        )


@attrs.define(eq=False)
class _Attempt:
    step: Step
    worker: Worker | None  # None: a pull, on every live builder
    started: float
    epoch: int  # the image's epoch when it started; a moved image's old attempts are stale
    fetched: tuple[str, ...] = ()  # parents it pulls from the registry first


@attrs.frozen
class _PullOutcome:
    """What one pull saw on each builder: None for success, else the error (or the bug)."""

    errors: dict[str, str | None]
    details: dict[str, str | None]
    bugs: dict[str, BaseException]


@attrs.frozen
class Scheduler:
    """Runs one plan over WORKERS. SEVERAL: the run was given several builders (their names
    go into the report, and a lost one's images move); LOST: those that did not answer at
    the start."""

    workers: Sequence[Worker]
    listener: Listener
    run_dir: Path
    pull_jobs: int
    several: bool = False
    lost: Sequence[tuple[str, str]] = ()

    def run(self, plan: Plan, interrupt: Interrupt | None = None) -> Report:
        interrupt = interrupt or Interrupt()
        for worker in self.workers:
            interrupt.on_cancel(worker.runner.cancel)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        run = _Run(plan, self)
        try:
            results = record_bugs(run.go(interrupt), self.run_dir)
        finally:
            for worker in self.workers:
                worker.runner.finish()
        outcomes = tuple(
            StepOutcome(
                step=step,
                outcome=results[step.key].outcome,
                started=results[step.key].started,
                duration=results[step.key].duration,
                detail=results[step.key].detail,
                error=results[step.key].error,
                builder=run.builder_of.get(step.key),
                waited=run.waited_of.get(step.key),
            )
            for step in plan.steps
        )
        return Report(
            outcomes=outcomes,
            run_dir=str(self.run_dir),
            interrupted=interrupt.stop.is_set(),
            elapsed=time.monotonic() - run.begin,
            moves=tuple(run.moves),
            lost_builders=tuple(run.lost),
        )


class _Run:
    """The state of one run; only the scheduling thread touches it."""

    def __init__(self, plan: Plan, scheduler: Scheduler) -> None:
        self.begin = time.monotonic()
        self.workers = list(scheduler.workers)
        self.listener = scheduler.listener
        self.pull_jobs = scheduler.pull_jobs
        self.several = scheduler.several
        self.lost = [f"{name} ({why})" for name, why in scheduler.lost]
        self.steps = {s.key: s for s in plan.steps}
        self.images = {i.name: i for i in plan.images}
        self.built = frozenset(s.image for s in plan.steps if s.op is Op.BUILD)
        self.chain: dict[str, list[str]] = {}  # image -> its steps' keys, in plan order
        for key, step in self.steps.items():
            if step.op is not Op.PULL:
                self.chain.setdefault(step.image, []).append(key)
        self.results: dict[str, TaskResult] = {}
        self.done_at: dict[str, float] = {}
        self.running: dict[Future[Any], tuple[str, _Attempt]] = {}
        self.where: dict[str, Worker] = {}  # image -> the builder its build runs or ran on
        self.epoch: dict[str, int] = {}
        self.moved: dict[str, int] = {}
        self.moves: list[Move] = []
        self.builder_of: dict[str, str] = {}  # only with several builders
        self.waited_of: dict[str, float] = {}
        self.pulling = 0
        self.promoting = False  # a promotion has started: the set is finished whatever comes

    # -- the loop ----------------------------------------------------------------------------

    def go(self, interrupt: Interrupt) -> dict[str, TaskResult]:
        total = sum(w.slots + w.push_slots for w in self.workers) + self.pull_jobs
        with ThreadPoolExecutor(max_workers=total, thread_name_prefix="dockerpkg") as pool:
            while True:
                self._settle_skips()
                if not any(w.alive for w in self.workers) and not self.running:
                    self._fail_pending("no builder left: " + "; ".join(self.lost))
                    break
                if not interrupt.stop.is_set():
                    self._start_ready(pool)
                elif self.promoting:
                    # Once a promotion has started, an interruption waits for the rest of
                    # the set (as update's swap holds signals back): all_or_nothing never
                    # leaves some tags of the run moved and others not by its own choice.
                    self._start_ready(pool, Op.PROMOTE)
                if not self.running:
                    break
                done, _ = wait(list(self.running), timeout=0.5, return_when=FIRST_COMPLETED)
                for future in done:
                    key, attempt = self.running.pop(future)
                    self._finished(key, attempt, future)
        why = "run interrupted" if interrupt.stop.is_set() else "could not be placed on a builder"
        for key in self.steps:
            if key not in self.results:
                outcome = Outcome.CANCELLED if interrupt.stop.is_set() else Outcome.FAILED
                self._record(TaskResult(key, outcome, error=why))
        return self.results

    def _record(self, result: TaskResult) -> None:
        self.results[result.key] = result
        if result.outcome is Outcome.SUCCEEDED:
            self.done_at[result.key] = time.monotonic()
        self.listener.task_finished(result)

    def _settle_skips(self) -> None:
        changed = True
        while changed:
            changed = False
            for key, step in self.steps.items():
                if key in self.results:
                    continue
                bad = [
                    n
                    for n in step.needs
                    if n in self.results and self.results[n].outcome is not Outcome.SUCCEEDED
                ]
                if bad:
                    cause = self.results[bad[0]]
                    # Name the first failure, not the chain of skips it caused.
                    why = cause.error if cause.outcome is Outcome.SKIPPED else None
                    fallback = f"{cause.key.replace(':', ' ', 1)} {cause.outcome.value}"
                    self._record(TaskResult(key, Outcome.SKIPPED, error=why or fallback))
                    changed = True

    def _fail_pending(self, why: str) -> None:
        """No builder is left: what has not run fails (its dependents are skipped)."""
        for key, step in self.steps.items():
            if key not in self.results and step.op not in _AFTER_BUILD:
                self._record(TaskResult(key, Outcome.FAILED, error=why))
        self._settle_skips()
        for key in self.steps:
            if key not in self.results:
                self._record(TaskResult(key, Outcome.FAILED, error=why))

    # -- starting ----------------------------------------------------------------------------

    def _start_ready(self, pool: ThreadPoolExecutor, only: Op | None = None) -> None:
        """Start every step (of op ONLY, when given) whose needs have succeeded."""
        active = {key for key, _ in self.running.values()}
        for key, step in self.steps.items():
            if key in self.results or key in active or only not in (None, step.op):
                continue
            if not all(
                self.results.get(n, _PENDING).outcome is Outcome.SUCCEEDED for n in step.needs
            ):
                continue
            attempt = self._place(key, step)
            if attempt is None:
                continue
            self.listener.task_started(key)
            self.promoting = self.promoting or step.op is Op.PROMOTE
            self.running[pool.submit(self._runner(step, attempt))] = (key, attempt)

    def _views(self) -> list[BuilderView]:
        return [w.view() for w in self.workers]

    def _take(self, worker: Worker, key: str, step: Step) -> _Attempt:
        if step.op in _PUSHING:
            worker.pushing += 1
        else:
            worker.building += 1
        if self.several:
            self.builder_of[key] = worker.name
        return _Attempt(step, worker, time.monotonic(), self.epoch.get(step.image, 0))

    def _place(self, key: str, step: Step) -> _Attempt | None:
        """An attempt of STEP on a free builder, or None if none may take it now."""
        if step.op is Op.PULL:
            if self.pulling >= self.pull_jobs:
                return None
            self.pulling += 1  # a pull runs on every live builder at once
            return _Attempt(step, None, time.monotonic(), 0)
        if step.op in _REGISTRY_ONLY:
            name = placement.registry_builder(self._views())
            return None if name is None else self._take(self._worker(name), key, step)
        worker = self.where.get(step.image)
        if worker is None:
            # The image's first step (its build, or a step building for it) chooses.
            return self._place_build(key, step)
        # Its other steps run on the builder that took the first.
        view = worker.view()
        if not (view.may_push if step.op in _PUSHING else view.may_build):
            return None
        return self._take(worker, key, step)

    def _worker(self, name: str) -> Worker:
        return next(w for w in self.workers if w.name == name)

    def _place_build(self, key: str, step: Step) -> _Attempt | None:
        image = self.images[step.image]
        published = frozenset(
            p
            for p in image.parents
            if self.results.get(step_key(Op.PUBLISH, p), _PENDING).outcome is Outcome.SUCCEEDED
        )
        name = placement.choose_builder(
            image,
            self.images,
            self._views(),
            built=self.built,
            where={i: w.name for i, w in self.where.items()},
            published=published,
        )
        if name is None:
            return None
        worker = self._worker(name)
        self.where[image.name] = worker
        for index, move in enumerate(self.moves):
            if move.image == image.name and move.to is None and move.lost != worker.name:
                self.moves[index] = attrs.evolve(move, to=worker.name)
        attempt = self._take(worker, key, step)
        attempt.fetched = placement.parents_to_fetch(
            image, self.images, frozenset(worker.held), several=self.several
        )
        if self.several:
            self.waited_of[step_key(Op.BUILD, image.name)] = self._parent_wait(key, image, worker)
        return attempt

    def _parent_wait(self, key: str, image: PlannedImage, worker: Worker) -> float:
        """Seconds between IMAGE's other needs (pulls) being met and its parents being ready
        for WORKER: verified there, or published."""
        parents = placement.parents_in_run(image, self.built)
        if not parents:
            return 0.0
        ready = max(
            self.done_at.get(
                step_key(Op.VERIFY if self.where.get(p) is worker else Op.PUBLISH, p), self.begin
            )
            for p in parents
        )
        others = [
            self.done_at.get(n, self.begin)
            for n in self.steps[key].needs
            if self.steps[n].op is Op.PULL
        ]
        return max(0.0, ready - max(others, default=self.begin))

    def _runner(self, step: Step, attempt: _Attempt) -> Callable[[], Any]:
        worker = attempt.worker
        if worker is None:
            targets = [w for w in self.workers if w.alive]
            # A pull's detail is the name the image gets (a staged parent's own label).
            return lambda: _pull_everywhere(targets, step.label or step.image, step.detail)
        run = worker.runner.step_runner(step, self.images.get(step.image))
        if not attempt.fetched:
            return run
        fetch, name = attempt.fetched, step.image

        def build() -> str | None:
            # Parents built elsewhere (or published before the run) come from the registry.
            for label in fetch:
                worker.runner.pull(label, name)
            return run()

        return build

    # -- finishing ---------------------------------------------------------------------------

    def _finished(self, key: str, attempt: _Attempt, future: Future[Any]) -> None:
        started = attempt.started - self.begin
        duration = time.monotonic() - attempt.started
        worker = attempt.worker
        if worker is None:
            self.pulling -= 1
            self._pull_finished(key, attempt, future, started, duration)
            return
        if attempt.step.op in _PUSHING:
            worker.pushing -= 1
        else:
            worker.building -= 1
        image = attempt.step.image
        if attempt.epoch != self.epoch.get(image, 0):
            return  # the image has moved: this attempt on a lost builder no longer counts
        try:
            detail = future.result()
        except TaskCancelledError as exc:
            self._record(TaskResult(key, Outcome.CANCELLED, started, duration, error=str(exc)))
            return
        except Exception as exc:  # noqa: BLE001 (a failure, or a bug: shown, never hanging the run)
            failed = (
                TaskResult(key, Outcome.FAILED, started, duration, exc.detail, str(exc))
                if isinstance(exc, TaskFailedError)
                else bug_result(key, exc, started, duration)
            )
            if self.several and (not worker.alive or not worker.runner.reachable()):
                self._lose(worker, failed.error or "")
                if attempt.epoch != self.epoch.get(image, 0):
                    return  # moved: it runs again elsewhere
            if key not in self.results:
                self._record(failed)
            return
        worker.held.update(attempt.fetched)
        if attempt.step.op is Op.BUILD:
            worker.held.add(attempt.step.label or "")
        self._record(TaskResult(key, Outcome.SUCCEEDED, started, duration, detail=detail))

    def _pull_finished(
        self, key: str, attempt: _Attempt, future: Future[Any], started: float, duration: float
    ) -> None:
        label = attempt.step.label or attempt.step.image
        try:
            outcome: _PullOutcome = future.result()
        except Exception as exc:  # noqa: BLE001 (a bug: shown whole)
            self._record(bug_result(key, exc, started, duration))
            return
        if outcome.bugs:
            self._record(bug_result(key, next(iter(outcome.bugs.values())), started, duration))
            return
        failures = []
        for name, error in outcome.errors.items():
            worker = self._worker(name)
            if error is None:
                worker.held.add(label)
            elif self.several and not worker.runner.reachable():
                self._lose(worker, error)
            else:
                failures.append(f"on {name}: {error}" if self.several else error)
        if failures:
            error = "; ".join(failures)
            self._record(TaskResult(key, Outcome.FAILED, started, duration, error=error))
        elif not any(w.alive for w in self.workers):
            self._record(
                TaskResult(key, Outcome.FAILED, started, duration, error="no builder left")
            )
        else:
            details = {d for d in outcome.details.values() if d}
            detail = ", ".join(sorted(details)) or None
            self._record(TaskResult(key, Outcome.SUCCEEDED, started, duration, detail=detail))

    def _lose(self, worker: Worker, why: str) -> None:
        """WORKER stopped answering: out of the run; its unpublished images move."""
        if worker.alive:
            worker.alive = False
            self.lost.append(f"{worker.name} ({why})")
        outcomes = {key: r.outcome for key, r in self.results.items()}
        choices = placement.moves_off(
            worker.name,
            {i: w.name for i, w in self.where.items()},
            self.chain,
            outcomes,
            self.moved,
        )
        for choice in choices:
            self.moved[choice.image] = self.moved.get(choice.image, 0) + 1
            del self.where[choice.image]
            if choice.kind is MoveKind.GIVE_UP:
                self._give_up(choice.image, choice.keys[0], worker.name, why)
            else:
                self._move(choice.image, choice.keys, worker.name, why)

    def _give_up(self, image: str, first: str, lost: str, why: str) -> None:
        limit = placement.MAX_MOVES
        self.moves.append(Move(image, lost, None, f"{why}; moved {limit} times"))
        self.results.pop(first, None)
        error = f"builder {lost} lost ({why}); moved {limit} times already"
        self._record(TaskResult(first, Outcome.FAILED, error=error))

    def _move(self, image: str, chain: Sequence[str], lost: str, why: str) -> None:
        self.epoch[image] = self.epoch.get(image, 0) + 1
        reset = [k for k in chain if k in self.results]
        for key in chain:
            self.results.pop(key, None)
            self.done_at.pop(key, None)
            self.builder_of.pop(key, None)
            self.waited_of.pop(key, None)
        self.moves.append(Move(image, lost, None, why))
        moved = getattr(self.listener, "task_moved", None)
        if moved is not None:
            moved(image, reset, f"builder {lost} lost ({why}); building it again elsewhere")


_PENDING = TaskResult("", Outcome.CANCELLED)
# Steps that follow an image's build; any other step of an image builds (as a build stage).
_AFTER_BUILD = frozenset({Op.PULL, Op.VERIFY, Op.PUBLISH, Op.TAG_LATEST, Op.UNSTAGE})
_PUSHING = frozenset({Op.PUBLISH, Op.TAG_LATEST, Op.UNSTAGE})  # steps that take a push slot
# Steps that only talk to the registry: any live builder's push slot runs them.
_REGISTRY_ONLY = frozenset({Op.TAG_LATEST, Op.UNSTAGE})


def _pull_everywhere(
    workers: Sequence[Worker], label: str, named: str | None = None
) -> _PullOutcome:
    """Pull LABEL (to be named NAMED) on every one of WORKERS at once; each one's error (or
    None)."""
    errors: dict[str, str | None] = {}
    details: dict[str, str | None] = {}
    bugs: dict[str, BaseException] = {}

    def pull(worker: Worker) -> None:
        try:
            details[worker.name] = worker.runner.pull(label, "pulls", named)
            errors[worker.name] = None
        except TaskFailedError as exc:
            errors[worker.name] = str(exc)
        except Exception as exc:  # noqa: BLE001 (a bug: shown whole by the caller)
            bugs[worker.name] = exc

    if len(workers) == 1:
        pull(workers[0])  # a run of one needs no thread of its own
    else:
        with ThreadPoolExecutor(max_workers=max(1, len(workers))) as pool:
            list(pool.map(pull, workers))
    return _PullOutcome(errors, details, bugs)
