"""Run a build plan over several Docker engines (builders), the registry between them.

Like scheduler.run_tasks this only orders and runs: the plan decided what to build. What it
adds is placement, which only the run can know: each ready image goes to a free build slot,
preferring a builder that already holds its parents; an image whose parents were built on
another builder starts once they are published, and its builder pulls them first. The
image's verification and publication run on the builder that built it.

A step that fails on a builder which then does not answer a ping takes that builder out of
the run; every image bound to it and not yet published is built again elsewhere, at most
MAX_MOVES times. Whatever was published stays published.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

import attrs
import docker

from dockerpkg.core.plan import Op, Plan, PlannedImage, Step, step_key
from dockerpkg.core.report import Move, Outcome, Report, StepOutcome
from dockerpkg.effects import daemon
from dockerpkg.effects.apply import Executor, Settings
from dockerpkg.effects.scheduler import (
    Interrupt,
    Listener,
    TaskCancelledError,
    TaskFailedError,
    TaskResult,
    bug_result,
    record_bugs,
)

# Times one image may be taken off a lost builder and built again on another.
MAX_MOVES = 2


@attrs.define(eq=False)
class Worker:
    """One builder of the run: its daemon, its executor, and what runs on it now."""

    name: str
    client: docker.APIClient
    executor: Executor
    slots: int
    push_slots: int
    building: int = 0  # builds and verifications running (they share the build slots)
    pushing: int = 0
    alive: bool = True
    held: set[str] = attrs.field(factory=set)  # labels it holds: pulled or built in this run


@attrs.define(eq=False)
class _Attempt:
    step: Step
    worker: Worker | None  # None: a pull, on every live builder
    started: float
    epoch: int  # the image's epoch when it started; a moved image's old attempts are stale
    waited: float | None = None
    fetched: list[str] = attrs.field(factory=list)  # parents it pulls from the registry


@attrs.define
class _PullOutcome:
    """What one pull task saw on each builder: None for success, else the error."""

    errors: dict[str, str | None]
    details: dict[str, str | None]


class Fleet:
    """Runs one plan over WORKERS; one instance per run."""

    def __init__(
        self,
        workers: Sequence[Worker],
        settings: Settings,
        listener: Listener,
        lost: Sequence[tuple[str, str]] = (),
    ) -> None:
        self._workers = list(workers)
        self._settings = settings
        self._listener = listener
        self._lost: list[str] = [f"{name} ({why})" for name, why in lost]

    def run(self, plan: Plan, interrupt: Interrupt | None = None) -> Report:
        interrupt = interrupt or Interrupt()
        for worker in self._workers:
            interrupt.on_cancel(worker.executor.cancel)
        self._settings.run_dir.mkdir(parents=True, exist_ok=True)
        run = _Run(plan, self._workers, self._settings, self._listener, self._lost)
        results = record_bugs(run.go(interrupt), self._settings.run_dir)
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
            run_dir=str(self._settings.run_dir),
            interrupted=interrupt.stop.is_set(),
            elapsed=time.monotonic() - run.begin,
            moves=tuple(run.moves),
            lost_builders=tuple(self._lost),
        )


class _Run:
    """The state of one run; only the scheduling thread touches it."""

    def __init__(
        self,
        plan: Plan,
        workers: list[Worker],
        settings: Settings,
        listener: Listener,
        lost: list[str],
    ) -> None:
        self.begin = time.monotonic()
        self.workers = workers
        self.settings = settings
        self.listener = listener
        self.lost = lost
        self.steps = {s.key: s for s in plan.steps}
        self.order = {key: i for i, key in enumerate(self.steps)}
        self.images = {i.name: i for i in plan.images}
        self.needs = _needs(plan)
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
        self.builder_of: dict[str, str] = {}
        self.waited_of: dict[str, float] = {}
        self.pulling = 0

    # -- the loop ----------------------------------------------------------------------------

    def go(self, interrupt: Interrupt) -> dict[str, TaskResult]:
        total = sum(w.slots + w.push_slots for w in self.workers) + self.settings.pull_jobs
        with ThreadPoolExecutor(max_workers=total, thread_name_prefix="dockerpkg") as pool:
            while True:
                self._settle_skips()
                if not any(w.alive for w in self.workers) and not self.running:
                    self._fail_pending("no builder left: " + "; ".join(self.lost))
                    break
                if not interrupt.stop.is_set():
                    self._start_ready(pool)
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
            for key in self.steps:
                if key in self.results:
                    continue
                bad = [
                    n
                    for n in self.needs[key]
                    if n in self.results and self.results[n].outcome is not Outcome.SUCCEEDED
                ]
                if bad:
                    cause = self.results[bad[0]]
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

    def _start_ready(self, pool: ThreadPoolExecutor) -> None:
        active = {key for key, _ in self.running.values()}
        for key, step in self.steps.items():
            if key in self.results or key in active:
                continue
            if not all(
                self.results.get(n, _PENDING).outcome is Outcome.SUCCEEDED for n in self.needs[key]
            ):
                continue
            attempt = self._place(key, step)
            if attempt is None:
                continue
            self.listener.task_started(key)
            self.running[pool.submit(self._runner(key, step, attempt))] = (key, attempt)

    def _place(self, key: str, step: Step) -> _Attempt | None:
        """An attempt of STEP on a free builder, or None if none may take it now."""
        if step.op is Op.PULL:
            return self._place_pull(step)
        if step.op is Op.TAG_LATEST:
            return self._place_registry_step(key, step)
        worker = self.where.get(step.image)
        if worker is None:
            # The image's first step (its build, or a step building for it) chooses.
            return self._place_build(key, step)
        # Its other steps run on the builder that took the first.
        if not worker.alive:
            return None
        if step.op not in _PUSHING and worker.building < worker.slots:
            worker.building += 1
        elif step.op in _PUSHING and worker.pushing < worker.push_slots:
            worker.pushing += 1
        else:
            return None
        self.builder_of[key] = worker.name
        return _Attempt(step, worker, time.monotonic(), self.epoch.get(step.image, 0))

    def _place_pull(self, step: Step) -> _Attempt | None:
        """A pull runs on every builder at once, within the run's pull slots."""
        if self.pulling >= self.settings.pull_jobs:
            return None
        self.pulling += 1
        return _Attempt(step, None, time.monotonic(), 0)

    def _place_registry_step(self, key: str, step: Step) -> _Attempt | None:
        """Registry work only: any builder with a free push slot runs it (with its client)."""
        free = [w for w in self.workers if w.alive and w.pushing < w.push_slots]
        if not free:
            return None
        free[0].pushing += 1
        self.builder_of[key] = free[0].name
        return _Attempt(step, free[0], time.monotonic(), self.epoch.get(step.image, 0))

    def _place_build(self, key: str, step: Step) -> _Attempt | None:
        image = step.image
        worker = self._choose(self.images[image])
        if worker is None:
            return None
        self.where[image] = worker
        self.builder_of[key] = worker.name
        for index, move in enumerate(self.moves):
            if move.image == image and move.to is None and move.lost != worker.name:
                self.moves[index] = attrs.evolve(move, to=worker.name)
        worker.building += 1
        waited = self._parent_wait(key, self.images[image], worker)
        self.waited_of[step_key(Op.BUILD, image)] = waited
        return _Attempt(step, worker, time.monotonic(), self.epoch.get(image, 0), waited)

    def _in_run(self, image: PlannedImage) -> list[str]:
        return [p for p in image.parents if step_key(Op.BUILD, p) in self.steps]

    def _choose(self, image: PlannedImage) -> Worker | None:
        """The free builder for IMAGE holding most of its parents; one without them only
        once they are published (it pulls them)."""
        parents = self._in_run(image)
        labels = [self.images[p].label for p in image.parents if p in self.images]

        def may(worker: Worker) -> bool:
            return all(
                self.where.get(p) is worker
                or self.results.get(step_key(Op.PUBLISH, p), _PENDING).outcome is Outcome.SUCCEEDED
                for p in parents
            )

        free = [
            (i, w)
            for i, w in enumerate(self.workers)
            if w.alive and w.building < w.slots and may(w)
        ]
        if not free:
            return None
        _, worker = min(
            free,
            key=lambda item: (
                -sum(label in item[1].held for label in labels),
                item[1].building / item[1].slots,
                item[0],
            ),
        )
        return worker

    def _parent_wait(self, key: str, image: PlannedImage, worker: Worker) -> float:
        """Seconds between IMAGE's other needs (pulls) being met and its parents being ready
        for WORKER: verified there, or published."""
        parents = self._in_run(image)
        if not parents:
            return 0.0
        ready = max(
            self.done_at.get(
                step_key(Op.VERIFY if self.where.get(p) is worker else Op.PUBLISH, p), self.begin
            )
            for p in parents
        )
        others = [
            self.done_at.get(n, self.begin) for n in self.needs[key] if self.steps[n].op is Op.PULL
        ]
        return max(0.0, ready - max(others, default=self.begin))

    def _runner(self, key: str, step: Step, attempt: _Attempt) -> Callable[[], Any]:
        worker = attempt.worker
        if worker is None:
            targets = [w for w in self.workers if w.alive]
            return lambda: _pull_everywhere(targets, step.label or step.image)
        image = self.images[step.image]
        run = worker.executor.step_runner(step, image)
        if step.op in _AFTER_BUILD:
            return run
        # Parents built elsewhere (or published before the run) come from the registry.
        attempt.fetched = [
            self.images[p].label
            for p in image.parents
            if p in self.images and self.images[p].label not in worker.held
        ]
        fetch = list(attempt.fetched)

        def build() -> str | None:
            for label in fetch:
                worker.executor.pull(label, image.name)
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
                TaskResult(key, Outcome.FAILED, started, duration, error=str(exc))
                if isinstance(exc, TaskFailedError)
                else bug_result(key, exc, started, duration)
            )
            if not worker.alive or not daemon.reachable(worker.client):
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
        failures = []
        by_name = {w.name: w for w in self.workers}
        for name, error in outcome.errors.items():
            worker = by_name[name]
            if error is None:
                worker.held.add(label)
            elif not daemon.reachable(worker.client):
                self._lose(worker, error)
            else:
                failures.append(f"on {name}: {error}")
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
        for image, placed in list(self.where.items()):
            if placed is worker and self._unfinished(image):
                self._move(image, worker, why)

    def _unfinished(self, image: str) -> bool:
        held = [self.results[k] for k in self.chain[image] if k in self.results]
        if any(r.outcome is not Outcome.SUCCEEDED for r in held):
            return False  # it failed for a reason of its own: moving would not help
        return step_key(Op.PUBLISH, image) not in self.results

    def _move(self, image: str, worker: Worker, why: str) -> None:
        chain = self.chain[image]
        self.moved[image] = self.moved.get(image, 0) + 1
        del self.where[image]
        if self.moved[image] > MAX_MOVES:
            self.moves.append(Move(image, worker.name, None, f"{why}; moved {MAX_MOVES} times"))
            first = next(
                k
                for k in chain
                if k not in self.results or self.results[k].outcome is not Outcome.SUCCEEDED
            )
            self.results.pop(first, None)
            error = f"builder {worker.name} lost ({why}); moved {MAX_MOVES} times already"
            self._record(TaskResult(first, Outcome.FAILED, error=error))
            return
        self.epoch[image] = self.epoch.get(image, 0) + 1
        reset = [k for k in chain if k in self.results]
        for key in chain:
            self.results.pop(key, None)
            self.done_at.pop(key, None)
            self.builder_of.pop(key, None)
            self.waited_of.pop(key, None)
        self.moves.append(Move(image, worker.name, None, why))
        moved = getattr(self.listener, "task_moved", None)
        if moved is not None:
            moved(image, reset, f"builder {worker.name} lost ({why}); building it again elsewhere")


_PENDING = TaskResult("", Outcome.CANCELLED)
# Steps that follow an image's build; any other step of an image builds (as a build stage).
_AFTER_BUILD = frozenset({Op.PULL, Op.VERIFY, Op.PUBLISH, Op.TAG_LATEST})
_PUSHING = frozenset({Op.PUBLISH, Op.TAG_LATEST})  # steps that take a push slot


def _needs(plan: Plan) -> dict[str, tuple[str, ...]]:
    """What each step needs, as the plan says (placement adds the rest)."""
    return {step.key: step.needs for step in plan.steps}


def _pull_everywhere(workers: Sequence[Worker], label: str) -> _PullOutcome:
    """Pull LABEL on every one of WORKERS at once; each one's error (or None)."""
    errors: dict[str, str | None] = {}
    details: dict[str, str | None] = {}

    def pull(worker: Worker) -> None:
        try:
            details[worker.name] = worker.executor.pull(label, "pulls")
            errors[worker.name] = None
        except Exception as exc:  # noqa: BLE001 (reported per builder, bugs included)
            errors[worker.name] = str(exc) if isinstance(exc, TaskFailedError) else repr(exc)

    with ThreadPoolExecutor(max_workers=max(1, len(workers))) as pool:
        list(pool.map(pull, workers))
    return _PullOutcome(errors, details)
