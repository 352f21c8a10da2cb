"""The results of a run's steps as the scheduler (dockerpkg.effects.scheduler) records
them: each once, told to the listener, with the skips a failure implies."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from dockerpkg.core.ops import OPS, Where
from dockerpkg.core.plan import Op, Step, StepKey
from dockerpkg.core.report import Outcome
from dockerpkg.effects.tasks import Listener, TaskResult


class Ledger:
    """The results of a run's steps so far: each recorded once and told to the listener,
    with the skips a failure implies for what needs it."""

    def __init__(self, steps: Mapping[StepKey, Step], listener: Listener, begin: float) -> None:
        self.steps = steps
        self.listener = listener
        self.begin = begin
        self.results: dict[StepKey, TaskResult] = {}
        self.done_at: dict[StepKey, float] = {}  # when each succeeded (monotonic)

    def record(self, result: TaskResult) -> None:
        self.results[result.key] = result
        if result.outcome is Outcome.SUCCEEDED:
            self.done_at[result.key] = time.monotonic()
        self.listener.task_finished(result)

    def succeeded(self, key: StepKey | None) -> bool:
        found = None if key is None else self.results.get(key)
        return found is not None and found.outcome is Outcome.SUCCEEDED

    def ready(self, step: Step) -> bool:
        """Whether every step STEP needs has succeeded."""
        return all(self.succeeded(n) for n in step.needs)

    def outcomes(self) -> dict[StepKey, Outcome]:
        return {key: r.outcome for key, r in self.results.items()}

    def forget(self, keys: Sequence[StepKey]) -> list[StepKey]:
        """Drop the results of KEYS (an image built again elsewhere); those it had."""
        reset = [k for k in keys if k in self.results]
        for key in keys:
            self.results.pop(key, None)
            self.done_at.pop(key, None)
        return reset

    def settle_skips(self) -> None:
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
                    fallback = f"{cause.key.words} {cause.outcome.value}"
                    self.record(TaskResult(key, Outcome.SKIPPED, error=why or fallback))
                    changed = True

    def fail_pending(self, why: str) -> None:
        """No builder is left: what has not run fails (its dependents are skipped)."""
        for key, step in self.steps.items():
            if key not in self.results and _fails_itself(step.op):
                self.record(TaskResult(key, Outcome.FAILED, error=why))
        self.settle_skips()
        self.close(Outcome.FAILED, why)

    def close(self, outcome: Outcome, why: str) -> None:
        """The run ends: every step without a result gets OUTCOME, for WHY."""
        for key in self.steps:
            if key not in self.results:
                self.record(TaskResult(key, outcome, error=why))


def _fails_itself(op: Op) -> bool:
    """Whether a step of OP fails itself when no builder is left (one building on its
    image's builder), rather than being skipped through what it needs."""
    rule = OPS[op]
    return rule.where is Where.IMAGE_BUILDER and not rule.after_build
