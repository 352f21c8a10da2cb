"""The scheduler: order, concurrency caps, failure isolation, interruption, and a lost
builder's images moving to another (with fake builders: the scheduler's own logic)."""

from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import attrs
import pytest

from dockerpkg.core.needs import with_needs
from dockerpkg.core.plan import (
    Action,
    Op,
    Plan,
    PlannedBuilder,
    PlannedImage,
    Reason,
    Step,
    StepKey,
)
from dockerpkg.core.report import Outcome, Report
from dockerpkg.effects.progress import LineProgress, LiveProgress
from dockerpkg.effects.scheduler import Scheduler, Worker
from dockerpkg.effects.tasks import (
    BUGS_LOG,
    Interrupt,
    TaskCancelledError,
    TaskFailedError,
    TaskResult,
)

Run = Callable[[], "str | None"]


class Recorder:
    """A listener that keeps every event, with the time it happened."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, float]] = []
        self.lock = threading.Lock()

    def task_started(self, key: StepKey) -> None:
        with self.lock:
            self.events.append(("start", str(key), time.monotonic()))

    def task_finished(self, result: TaskResult) -> None:
        with self.lock:
            self.events.append((result.outcome.value, str(result.key), time.monotonic()))

    def time_of(self, kind: str, key: str) -> float:
        return next(t for k, name, t in self.events if k == kind and name == key)


def sleeper(seconds: float, fail: bool = False) -> Run:
    def run() -> str:
        time.sleep(seconds)
        if fail:
            raise TaskFailedError("boom")
        return "ok"

    return run


@attrs.define
class FakeBuilder:
    """Runs each step as the table says: no daemon (the scheduler's own logic only)."""

    runs: dict[str, Run]
    answers: bool = True  # what a ping after a failure says
    ran: list[str] = attrs.field(factory=list)
    cancelled: bool = False
    finished: bool = False

    def step_runner(self, step: Step, image: PlannedImage | None) -> Run:
        run = self.runs[str(step.key)]

        def logged() -> str | None:
            self.ran.append(str(step.key))
            return run()

        return logged

    def pull(
        self, label: str, log_name: str, named: str | None = None, platform: str | None = None
    ) -> str | None:
        fetched = f"fetch:{label}" if named is None else f"fetch:{label} as {named}"
        self.ran.append(fetched if platform is None else f"{fetched} for {platform}")
        return None

    def cancel(self) -> None:
        self.cancelled = True

    def reachable(self) -> bool:
        return self.answers

    def finish(self) -> None:
        self.finished = True


def image(name: str, *parents: str) -> PlannedImage:
    return PlannedImage(
        path=name,
        name=name,
        tag="1.0",
        label=f"r.example/{name}:1.0",
        repository=f"r.example/{name}",
        depends=parents,
        parents=parents,
        dockerfile="FROM scratch\n",
    )


def build(name: str, *needs: str) -> Step:
    """A build step of NAME waiting for the builds NEEDS (as `build:NAME` keys)."""
    return Step(Op.BUILD, name, Reason.OFFLINE, needs=tuple(StepKey(Op.BUILD, n) for n in needs))


def plan_of(steps: list[Step], images: list[PlannedImage] | None = None) -> Plan:
    images = images or [image(s.image) for s in steps]
    return Plan(Action.BUILD, ".", "sha256:0", tuple(images), tuple(steps))


def run_alone(
    plan: Plan,
    runs: dict[str, Run],
    slots: int,
    listener: Recorder,
    tmp_path: Path,
    interrupt: Interrupt | None = None,
) -> dict[str, TaskResult]:
    """Run PLAN on one fake builder with SLOTS build slots; each step's result by key."""
    worker = Worker("one", FakeBuilder(runs), slots, 1)
    report = Scheduler([worker], listener, tmp_path, pull_jobs=1).run(plan, interrupt)
    return results_of(report)


def results_of(report: Report) -> dict[str, TaskResult]:
    return {
        str(o.step.key): TaskResult(o.step.key, o.outcome, o.started, o.duration, o.detail, o.error)
        for o in report.outcomes
    }


def sleepers(plan: Plan, seconds: float = 0.05, failing: tuple[str, ...] = ()) -> dict[str, Run]:
    return {str(s.key): sleeper(seconds, str(s.key) in failing) for s in plan.steps}


class TestOrdering:
    """A step starts only after everything it needs has succeeded."""

    def test_needs_first(self, tmp_path: Path) -> None:
        rec = Recorder()
        plan = plan_of([build("a"), build("b", "a"), build("c", "a"), build("d", "b", "c")])
        results = run_alone(plan, sleepers(plan), 4, rec, tmp_path)
        assert all(r.outcome is Outcome.SUCCEEDED for r in results.values())
        assert rec.time_of("start", "build:b") >= rec.time_of("succeeded", "build:a")
        assert rec.time_of("start", "build:d") >= rec.time_of("succeeded", "build:c")

    def test_independent_branches_overlap(self, tmp_path: Path) -> None:
        rec = Recorder()
        plan = plan_of([build("x"), build("y")])
        run_alone(plan, sleepers(plan, 0.3), 2, rec, tmp_path)
        assert rec.time_of("start", "build:y") < rec.time_of("succeeded", "build:x")

    def test_cap_is_respected(self, tmp_path: Path) -> None:
        rec = Recorder()
        plan = plan_of([build(f"t{i}") for i in range(6)])
        run_alone(plan, sleepers(plan), 2, rec, tmp_path)
        running = peak = 0
        for kind, _, _ in sorted(rec.events, key=lambda e: e[2]):
            running += 1 if kind == "start" else -1
            peak = max(peak, running)
        assert peak <= 2


class TestFailures:
    """A failure skips what needs it, with the reason; the rest goes on."""

    def test_dependents_skipped_siblings_continue(self, tmp_path: Path) -> None:
        plan = plan_of([build("a"), build("b", "a"), build("c", "b"), build("d")])
        runs = sleepers(plan, failing=("build:a",))
        results = run_alone(plan, runs, 2, Recorder(), tmp_path)
        assert results["build:a"].outcome is Outcome.FAILED
        assert results["build:a"].error == "boom"
        assert results["build:b"].outcome is Outcome.SKIPPED
        assert results["build:c"].outcome is Outcome.SKIPPED
        assert results["build:c"].error == "build a failed"
        assert results["build:d"].outcome is Outcome.SUCCEEDED

    def test_cancelled_step(self, tmp_path: Path) -> None:
        def stopped() -> str:
            raise TaskCancelledError("cancelled")

        plan = plan_of([build("a"), build("b", "a")])
        results = run_alone(
            plan, {"build:a": stopped, "build:b": sleeper(0)}, 1, Recorder(), tmp_path
        )
        assert results["build:a"].outcome is Outcome.CANCELLED
        assert results["build:b"].outcome is Outcome.SKIPPED


class TestInterrupt:
    """After a stop, running steps finish and nothing new starts."""

    def test_stop_lets_running_finish(self, tmp_path: Path) -> None:
        interrupt = Interrupt()
        rec = Recorder()

        def first() -> str:
            interrupt.stop.set()
            time.sleep(0.1)
            return "done"

        plan = plan_of([build("a"), build("b", "a"), build("c", "a")])
        runs = {**sleepers(plan), "build:a": first}
        results = run_alone(plan, runs, 1, rec, tmp_path, interrupt)
        assert results["build:a"].outcome is Outcome.SUCCEEDED
        assert results["build:b"].outcome is Outcome.CANCELLED
        assert results["build:c"].outcome is Outcome.CANCELLED

    def test_cancel_reaches_every_builder(self, tmp_path: Path) -> None:
        interrupt = Interrupt()
        builders = [FakeBuilder({}), FakeBuilder({})]
        workers = [Worker(f"b{i}", b, 1, 1) for i, b in enumerate(builders)]
        plan = plan_of([])
        Scheduler(workers, Recorder(), tmp_path, 1, several=True).run(plan, interrupt)
        interrupt.cancel()
        assert all(b.cancelled and b.finished for b in builders)


def promotions(*names: str) -> list[Step]:
    """A promote step per image of NAMES, each waiting for the one before (its parent's)."""
    return [
        Step(
            Op.PROMOTE,
            name,
            Reason.ALL_PUBLISHED,
            needs=(StepKey(Op.PROMOTE, names[i - 1]),) * (i > 0),
        )
        for i, name in enumerate(names)
    ]


class TestAllOrNothing:
    """Promotions: a set finished once started; staged parents named as their label; what
    a promotion did before failing kept."""

    def staged_set(self, *names: str) -> Plan:
        """Independent images NAMES built, verified, staged and promoted, with the needs
        the core works out (the first promotion is the barrier)."""
        made = [
            Step(op, name, Reason.BUILT_IN_THIS_RUN)
            for name in names
            for op in (Op.BUILD, Op.VERIFY, Op.PUBLISH)
        ]
        promoted = [Step(Op.PROMOTE, name, Reason.ALL_PUBLISHED) for name in names]
        images = [image(name) for name in names]
        return plan_of(list(with_needs([*made, *promoted], images)), images)

    def test_one_failed_image_moves_nothing(self, tmp_path: Path) -> None:
        plan = self.staged_set("a", "b", "c")
        runs = sleepers(plan, 0.01, failing=("publish:c",))
        results = run_alone(plan, runs, 3, Recorder(), tmp_path)
        assert results["publish:a"].outcome is Outcome.SUCCEEDED
        for name in ("a", "b", "c"):
            assert results[f"promote:{name}"].outcome is Outcome.SKIPPED, name
            assert results[f"promote:{name}"].error == "publish c failed", name

    def test_promotions_after_the_barrier_run_side_by_side(self, tmp_path: Path) -> None:
        rec = Recorder()
        plan = self.staged_set("a", "b", "c")
        runs = {**sleepers(plan, 0.01), "promote:b": sleeper(0.3), "promote:c": sleeper(0.3)}
        worker = Worker("one", FakeBuilder(runs), 3, 3)
        Scheduler([worker], rec, tmp_path, pull_jobs=1).run(plan)
        assert rec.time_of("start", "promote:b") >= rec.time_of("succeeded", "promote:a")
        assert rec.time_of("start", "promote:c") < rec.time_of("succeeded", "promote:b")

    def test_an_interruption_in_the_barrier_waits_for_the_rest(self, tmp_path: Path) -> None:
        interrupt = Interrupt()

        def first() -> str:
            interrupt.cancel()  # SIGTERM during the first promotion, the barrier
            time.sleep(0.1)
            return "moved"

        plan = self.staged_set("a", "b", "c")
        runs = {**sleepers(plan, 0.01), "promote:a": first}
        results = run_alone(plan, runs, 3, Recorder(), tmp_path, interrupt)
        for name in ("a", "b", "c"):
            assert results[f"promote:{name}"].outcome is Outcome.SUCCEEDED, name

    def test_an_interruption_waits_for_the_promotion_set(self, tmp_path: Path) -> None:
        interrupt = Interrupt()
        rec = Recorder()

        def first() -> str:
            interrupt.cancel()  # SIGTERM during the first promotion
            return "moved"

        plan = plan_of([*promotions("a", "b", "c"), build("d")])
        runs = {**sleepers(plan), "promote:a": first}
        worker = Worker("one", FakeBuilder(runs), 1, 1)
        report = Scheduler([worker], rec, tmp_path, pull_jobs=1).run(plan, interrupt)
        results = results_of(report)
        assert report.interrupted
        for name in ("a", "b", "c"):
            assert results[f"promote:{name}"].outcome is Outcome.SUCCEEDED, name
        # Nothing else starts: the hold is for the promotions only.
        assert results["build:d"].outcome is Outcome.CANCELLED

    def test_a_staged_parent_is_named_as_its_label(self, tmp_path: Path) -> None:
        pull = Step(
            Op.PULL,
            "a",
            Reason.STAGED_DEPENDENCY,
            "r.example/dockerpkg-staging/a:1.0@sha256:1",
            "r.example/a:1.0",
        )
        builder = FakeBuilder({})
        plan = plan_of([pull], [image("a")])
        Scheduler([Worker("one", builder, 1, 1)], Recorder(), tmp_path, 1).run(plan)
        assert builder.ran == [
            "fetch:r.example/dockerpkg-staging/a:1.0@sha256:1 as r.example/a:1.0"
        ]

    def test_what_a_promotion_did_before_failing_is_kept(self, tmp_path: Path) -> None:
        def half() -> str:
            raise TaskFailedError("cannot tag it latest", detail="sha256:moved")

        plan = plan_of(promotions("a"))
        results = run_alone(plan, {"promote:a": half}, 1, Recorder(), tmp_path)
        assert results["promote:a"].outcome is Outcome.FAILED
        assert results["promote:a"].detail == "sha256:moved"
        assert results["promote:a"].error == "cannot tag it latest"


class TestSeveralBuilders:
    """Placement as the core chooses it; a lost builder's images are built again elsewhere."""

    def chain(self, name: str, *parents: str) -> list[Step]:
        return [
            build(name, *parents),
            Step(Op.VERIFY, name, Reason.BUILT_IN_THIS_RUN, needs=(StepKey(Op.BUILD, name),)),
            Step(Op.PUBLISH, name, Reason.BUILT_IN_THIS_RUN, needs=(StepKey(Op.VERIFY, name),)),
        ]

    def test_lost_builder_image_moves(self, tmp_path: Path) -> None:
        plan = plan_of(self.chain("a"), [image("a")])
        lost = FakeBuilder({**sleepers(plan), "build:a": sleeper(0, fail=True)}, answers=False)
        kept = FakeBuilder(sleepers(plan, 0))
        workers = [Worker("b0", lost, 1, 1), Worker("b1", kept, 1, 1)]
        report = Scheduler(workers, Recorder(), tmp_path, 1, several=True).run(plan)
        assert [(m.image, m.lost, m.to) for m in report.moves] == [("a", "b0", "b1")]
        assert report.lost_builders == ("b0 (boom)",)
        assert all(o.outcome is Outcome.SUCCEEDED for o in report.outcomes)
        assert {str(o.step.key): o.builder for o in report.outcomes} == {
            "build:a": "b1",
            "verify:a": "b1",
            "publish:a": "b1",
        }
        assert kept.ran == ["build:a", "verify:a", "publish:a"]

    def test_failure_on_a_builder_that_answers_stays_a_failure(self, tmp_path: Path) -> None:
        plan = plan_of(self.chain("a"), [image("a")])
        failing = FakeBuilder({**sleepers(plan), "build:a": sleeper(0, fail=True)})
        workers = [Worker("b0", failing, 1, 1), Worker("b1", FakeBuilder(sleepers(plan)), 1, 1)]
        report = Scheduler(workers, Recorder(), tmp_path, 1, several=True).run(plan)
        assert report.moves == ()
        assert report.lost_builders == ()
        assert [o.outcome for o in report.outcomes] == [
            Outcome.FAILED,
            Outcome.SKIPPED,
            Outcome.SKIPPED,
        ]

    def test_child_elsewhere_fetches_its_parent_after_publication(self, tmp_path: Path) -> None:
        steps = self.chain("a") + self.chain("b", "a") + self.chain("c", "a")
        plan = plan_of(steps, [image("a"), image("b", "a"), image("c", "a")])
        builders = [FakeBuilder(sleepers(plan, 0.2)), FakeBuilder(sleepers(plan, 0.2))]
        workers = [Worker(f"b{i}", b, 1, 1) for i, b in enumerate(builders)]
        report = Scheduler(workers, Recorder(), tmp_path, 1, several=True).run(plan)
        where = {str(o.step.key): o.builder for o in report.outcomes}
        assert where["build:a"] == "b0"
        assert {where["build:b"], where["build:c"]} == {"b0", "b1"}
        elsewhere = builders[1].ran
        assert elsewhere[0] == "fetch:r.example/a:1.0"  # pulled before building on b1
        child = next(k for k in ("build:b", "build:c") if where[k] == "b1")
        published = next(o for o in report.outcomes if str(o.step.key) == "publish:a")
        built = next(o for o in report.outcomes if str(o.step.key) == child)
        assert published.started is not None
        assert built.started is not None
        assert built.started >= published.started

    def test_one_builder_reports_no_names_and_never_fetches(self, tmp_path: Path) -> None:
        steps = self.chain("a") + self.chain("b", "a")
        plan = plan_of(steps, [image("a"), image("b", "a")])
        alone = FakeBuilder({**sleepers(plan, 0), "build:b": sleeper(0, fail=True)}, answers=False)
        report = Scheduler([Worker("one", alone, 2, 1)], Recorder(), tmp_path, 1).run(plan)
        assert all(o.builder is None and o.waited is None for o in report.outcomes)
        assert report.moves == ()
        assert report.lost_builders == ()
        assert not any(r.startswith("fetch:") for r in alone.ran)


class TestPlatforms:
    """With builders that say which platforms they build, each platform's steps go there."""

    def test_each_platform_on_its_builder_pulls_too(self, tmp_path: Path) -> None:
        arm, amd = "linux/arm64", "linux/amd64"
        images = [
            attrs.evolve(image("a:arm64"), platform=arm),
            attrs.evolve(image("a:amd64"), platform=amd),
            attrs.evolve(image("b:arm64", "a:arm64"), platform=arm),
        ]
        pulls = [
            Step(
                Op.PULL, f"base-{p}", Reason.BASE_IMAGE, "base", f"base-{p}", platform=f"linux/{p}"
            )
            for p in ("arm64", "amd64")
        ]

        def built(name: str, platform: str, *needs: StepKey) -> Step:
            label = f"r.example/{name}:1.0"
            return Step(Op.BUILD, name, Reason.OFFLINE, label, needs=needs, platform=platform)

        chains = [
            built("a:arm64", arm, pulls[0].key),
            built("a:amd64", amd, pulls[1].key),
            built("b:arm64", arm, StepKey(Op.BUILD, "a:arm64")),
        ]
        plan = attrs.evolve(
            plan_of([*pulls, *chains], images),
            builders=(
                PlannedBuilder("b-amd", platforms=(amd,)),
                PlannedBuilder("b-arm", platforms=(arm,)),
            ),
        )
        builders = {name: FakeBuilder(sleepers(plan, 0.01)) for name in ("b-amd", "b-arm")}
        workers = [Worker(name, b, 2, 1) for name, b in builders.items()]
        report = Scheduler(workers, Recorder(), tmp_path, 2, several=True).run(plan)
        assert all(o.outcome is Outcome.SUCCEEDED for o in report.outcomes), report.outcomes
        where = {str(o.step.key): o.builder for o in report.outcomes if o.step.op is Op.BUILD}
        assert where == {
            "build:a:arm64": "b-arm",
            "build:a:amd64": "b-amd",
            "build:b:arm64": "b-arm",
        }
        assert sorted(builders["b-arm"].ran) == [
            "build:a:arm64",
            "build:b:arm64",
            "fetch:base as base-arm64 for linux/arm64",
        ]
        assert "fetch:base as base-amd64 for linux/amd64" in builders["b-amd"].ran


class TestProgress:
    """Progress views: one timestamped line per event; a status line on a terminal."""

    def test_lines_and_quiet(self) -> None:
        stream = io.StringIO()
        progress = LineProgress(stream, total=2)
        progress.task_started(StepKey(Op.BUILD, "a"))
        progress.task_finished(TaskResult(StepKey(Op.BUILD, "a"), Outcome.SUCCEEDED, 0.0, 1.5))
        progress.task_finished(
            TaskResult(StepKey(Op.VERIFY, "a"), Outcome.FAILED, 1.5, 0.1, error="exit 1")
        )
        lines = stream.getvalue().splitlines()
        assert lines[0].endswith("start   build a")
        assert lines[1].endswith("done    build a in 1.5s (1/2)")
        assert lines[2].endswith("FAILED  verify a: exit 1 (2/2)")
        quiet = io.StringIO()
        progress = LineProgress(quiet, total=2, quiet=True)
        progress.task_started(StepKey(Op.BUILD, "a"))
        progress.task_finished(TaskResult(StepKey(Op.BUILD, "a"), Outcome.SUCCEEDED, 0.0, 1.5))
        assert quiet.getvalue() == ""

    def test_live_status_line(self) -> None:
        stream = io.StringIO()
        progress = LiveProgress(stream, total=3)
        progress.task_started(StepKey(Op.BUILD, "a"))
        progress.task_started(StepKey(Op.BUILD, "b"))
        assert stream.getvalue().rstrip().endswith("0/3 done, 0s | build a, build b")
        progress.task_finished(TaskResult(StepKey(Op.BUILD, "a"), Outcome.SUCCEEDED, 0.0, 0.2))
        assert stream.getvalue().endswith("1/3 done, 0s | build b")
        progress.close()
        assert stream.getvalue().endswith("\r\033[K")


class TestBugs:
    """An unexpected exception in a task is a bug: shown whole, not only as a row."""

    def test_traceback_kept_written_and_named(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        def broken() -> str | None:
            return {"a": "b"}["missing"]

        verify = Step(Op.VERIFY, "x", Reason.BUILT_IN_THIS_RUN, needs=(StepKey(Op.BUILD, "x"),))
        plan = plan_of([build("x"), verify])
        runs = {"build:x": broken, "verify:x": sleeper(0)}
        with caplog.at_level(logging.DEBUG, logger="dockerpkg.effects.tasks"):
            results = run_alone(plan, runs, 1, Recorder(), tmp_path)
        bug = results["build:x"]
        assert bug.outcome is Outcome.FAILED
        assert bug.error == (
            f"internal error: KeyError('missing') (a bug in dockerpkg: the traceback is in "
            f"{tmp_path / BUGS_LOG})"
        )
        written = (tmp_path / BUGS_LOG).read_text(encoding="utf-8")
        assert written.startswith("== build:x ==\nTraceback (most recent call last):\n")
        assert 'return {"a": "b"}["missing"]' in written
        assert "KeyError: 'missing'" in written
        # With --debug (the DEBUG level), the traceback goes to stderr as well.
        assert any("Traceback" in r.getMessage() for r in caplog.records)
        assert results["verify:x"].outcome is Outcome.SKIPPED

    def test_no_bug_no_file(self, tmp_path: Path) -> None:
        plan = plan_of([build("a")])
        results = run_alone(plan, sleepers(plan), 1, Recorder(), tmp_path)
        assert results["build:a"].outcome is Outcome.SUCCEEDED
        assert not (tmp_path / BUGS_LOG).exists()
