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

The loop is here; the results and the skips they imply are kept by dockerpkg.effects.ledger,
the builders, their slots and where each image's steps run by dockerpkg.effects.placing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import attrs

from dockerpkg.core import placement
from dockerpkg.core.placement import MoveKind
from dockerpkg.core.plan import Op, Plan, StepKey
from dockerpkg.core.report import Move, Outcome, Report, StepOutcome
from dockerpkg.effects.ledger import Ledger
from dockerpkg.effects.placing import Attempt, Placer, StepRunner, Worker
from dockerpkg.effects.registry.gate import RegistryGates
from dockerpkg.effects.tasks import (
    Interrupt,
    Listener,
    TaskCancelledError,
    TaskFailedError,
    TaskResult,
    bug_result,
    record_bugs,
)

# What runs steps, and the builders of a run, are defined beside their placement.
__all__ = ["Scheduler", "StepRunner", "Worker"]


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
    the start. GATES: the run's registry gates, whose counts go into the report."""

    workers: Sequence[Worker]
    listener: Listener
    run_dir: Path
    pull_jobs: int
    several: bool = False
    lost: Sequence[tuple[str, str]] = ()
    gates: RegistryGates | None = None

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
                builder=run.placer.builder_of.get(step.key),
                waited=run.placer.waited_of.get(step.key),
            )
            for step in plan.steps
        )
        return Report(
            outcomes=outcomes,
            run_dir=str(self.run_dir),
            interrupted=interrupt.stop.is_set(),
            elapsed=time.monotonic() - run.begin,
            moves=tuple(run.placer.moves),
            lost_builders=tuple(run.lost),
            registries=() if self.gates is None else self.gates.usage(),
        )


class _Run:
    """One run: the loop that starts ready steps and takes in their ends, and what becomes
    of a lost builder's images; only the scheduling thread touches it."""

    def __init__(self, plan: Plan, scheduler: Scheduler) -> None:
        self.begin = time.monotonic()
        self.listener = scheduler.listener
        self.several = scheduler.several
        self.lost = [f"{name} ({why})" for name, why in scheduler.lost]
        self.steps = {s.key: s for s in plan.steps}
        self.ledger = Ledger(self.steps, self.listener, self.begin)
        self.placer = Placer(
            plan,
            scheduler.workers,
            self.ledger,
            pull_jobs=scheduler.pull_jobs,
            several=scheduler.several,
        )
        self.workers = self.placer.workers
        self.chain: dict[str, list[StepKey]] = {}  # image -> its steps' keys, in plan order
        for key, step in self.steps.items():
            if step.op is not Op.PULL:
                self.chain.setdefault(step.image, []).append(key)
        self.running: dict[Future[Any], Attempt] = {}
        self.moved: dict[str, int] = {}
        self.promoting = False  # a promotion has started: the set is finished whatever comes

    # -- the loop ----------------------------------------------------------------------------

    def go(self, interrupt: Interrupt) -> dict[StepKey, TaskResult]:
        total = sum(w.slots + w.push_slots for w in self.workers) + self.placer.pull_jobs
        with ThreadPoolExecutor(max_workers=total, thread_name_prefix="dockerpkg") as pool:
            while True:
                self.ledger.settle_skips()
                if not any(w.alive for w in self.workers) and not self.running:
                    self.ledger.fail_pending("no builder left: " + "; ".join(self.lost))
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
                    self._finished(self.running.pop(future), future)
        if interrupt.stop.is_set():
            self.ledger.close(Outcome.CANCELLED, "run interrupted")
        else:
            self.ledger.close(Outcome.FAILED, "could not be placed on a builder")
        return self.ledger.results

    def _start_ready(self, pool: ThreadPoolExecutor, only: Op | None = None) -> None:
        """Start every step (of op ONLY, when given) whose needs have succeeded."""
        active = {attempt.step.key for attempt in self.running.values()}
        for key, step in self.steps.items():
            if key in self.ledger.results or key in active or only not in (None, step.op):
                continue
            if not self.ledger.ready(step):
                continue
            attempt = self.placer.place(step)
            if attempt is None:
                continue
            self.listener.task_started(key)
            self.promoting = self.promoting or step.op is Op.PROMOTE
            self.running[pool.submit(self._runner(attempt))] = attempt

    def _runner(self, attempt: Attempt) -> Callable[[], Any]:
        step, worker = attempt.step, attempt.worker
        if worker is None:
            names = placement.pull_targets(step.platform, self.placer.views())
            targets = [w for w in self.workers if w.name in names]
            # A pull's detail is the name the image gets (a staged parent's own label, one
            # platform's image).
            return lambda: _pull_everywhere(
                targets, step.label or step.image, step.detail, step.platform
            )
        image = self.placer.images.get(step.image)
        run = worker.runner.step_runner(step, image)
        if not attempt.fetched:
            return run
        fetch, name = attempt.fetched, step.image
        platform = None if image is None else image.platform

        def build() -> str | None:
            # Parents built elsewhere (or published before the run) come from the registry
            # (a platform image's: their images of its platform).
            for label in fetch:
                worker.runner.pull(label, name, platform=platform)
            return run()

        return build

    # -- finishing ---------------------------------------------------------------------------

    def _finished(self, attempt: Attempt, future: Future[Any]) -> None:
        key = attempt.step.key
        started = attempt.started - self.begin
        duration = time.monotonic() - attempt.started
        worker = attempt.worker
        self.placer.release(attempt)
        if worker is None:
            self._pull_finished(attempt, future, started, duration)
            return
        if not self.placer.current(attempt):
            return  # the image has moved: this attempt on a lost builder no longer counts
        try:
            detail = future.result()
        except TaskCancelledError as exc:
            self.ledger.record(
                TaskResult(key, Outcome.CANCELLED, started, duration, error=str(exc))
            )
            return
        except Exception as exc:  # noqa: BLE001 (a failure, or a bug: shown, never hanging the run)
            failed = (
                TaskResult(key, Outcome.FAILED, started, duration, exc.detail, str(exc))
                if isinstance(exc, TaskFailedError)
                else bug_result(key, exc, started, duration)
            )
            if self.several and (not worker.alive or not worker.runner.reachable()):
                self._lose(worker, failed.error or "")
                if not self.placer.current(attempt):
                    return  # moved: it runs again elsewhere
            if key not in self.ledger.results:
                self.ledger.record(failed)
            return
        worker.held.update(attempt.fetched)
        if attempt.step.op is Op.BUILD:
            worker.held.add(attempt.step.label or "")
        self.ledger.record(TaskResult(key, Outcome.SUCCEEDED, started, duration, detail=detail))

    def _pull_finished(
        self, attempt: Attempt, future: Future[Any], started: float, duration: float
    ) -> None:
        key, label = attempt.step.key, attempt.step.label or attempt.step.image
        try:
            outcome: _PullOutcome = future.result()
        except Exception as exc:  # noqa: BLE001 (a bug: shown whole)
            self.ledger.record(bug_result(key, exc, started, duration))
            return
        if outcome.bugs:
            bug = next(iter(outcome.bugs.values()))
            self.ledger.record(bug_result(key, bug, started, duration))
            return
        failures = []
        for name, error in outcome.errors.items():
            worker = self.placer.worker(name)
            if error is None:
                # One platform's pull is held under its own name (its detail).
                platform_name = attempt.step.detail if attempt.step.platform else None
                worker.held.add(platform_name or label)
            elif self.several and not worker.runner.reachable():
                self._lose(worker, error)
            else:
                failures.append(f"on {name}: {error}" if self.several else error)
        if failures:
            error = "; ".join(failures)
            self.ledger.record(TaskResult(key, Outcome.FAILED, started, duration, error=error))
        elif not any(w.alive for w in self.workers):
            self.ledger.record(
                TaskResult(key, Outcome.FAILED, started, duration, error="no builder left")
            )
        else:
            details = {d for d in outcome.details.values() if d}
            detail = ", ".join(sorted(details)) or None
            self.ledger.record(TaskResult(key, Outcome.SUCCEEDED, started, duration, detail=detail))

    # -- a lost builder ------------------------------------------------------------------------

    def _lose(self, worker: Worker, why: str) -> None:
        """WORKER stopped answering: out of the run; its unpublished images move."""
        if worker.alive:
            worker.alive = False
            self.lost.append(f"{worker.name} ({why})")
        where = self.placer.where
        choices = placement.moves_off(
            worker.name,
            {i: w.name for i, w in where.items()},
            self.chain,
            self.ledger.outcomes(),
            self.moved,
        )
        for choice in choices:
            self.moved[choice.image] = self.moved.get(choice.image, 0) + 1
            del where[choice.image]
            if choice.kind is MoveKind.GIVE_UP:
                self._give_up(choice.image, choice.keys[0], worker.name, why)
            else:
                self._move(choice.image, choice.keys, worker.name, why)

    def _give_up(self, image: str, first: StepKey, lost: str, why: str) -> None:
        limit = placement.MAX_MOVES
        self.placer.moves.append(Move(image, lost, None, f"{why}; moved {limit} times"))
        self.ledger.results.pop(first, None)
        error = f"builder {lost} lost ({why}); moved {limit} times already"
        self.ledger.record(TaskResult(first, Outcome.FAILED, error=error))

    def _move(self, image: str, chain: Sequence[StepKey], lost: str, why: str) -> None:
        epoch = self.placer.epoch
        epoch[image] = epoch.get(image, 0) + 1
        reset = self.ledger.forget(chain)
        for key in chain:
            self.placer.builder_of.pop(key, None)
            self.placer.waited_of.pop(key, None)
        self.placer.moves.append(Move(image, lost, None, why))
        moved = getattr(self.listener, "task_moved", None)
        if moved is not None:
            moved(image, reset, f"builder {lost} lost ({why}); building it again elsewhere")


def _pull_everywhere(
    workers: Sequence[Worker], label: str, named: str | None = None, platform: str | None = None
) -> _PullOutcome:
    """Pull LABEL (to be named NAMED; PLATFORM's image, if given) on every one of WORKERS at
    once; each one's error (or None)."""
    errors: dict[str, str | None] = {}
    details: dict[str, str | None] = {}
    bugs: dict[str, BaseException] = {}

    def pull(worker: Worker) -> None:
        try:
            details[worker.name] = worker.runner.pull(label, "pulls", named, platform)
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
