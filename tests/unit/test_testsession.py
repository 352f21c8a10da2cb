"""A test session's pure parts and its marks, without Docker: selection by names (with the
parents they need), publishing turned off by the run, the session's suffix, the results of a
run, and the marks telling live sessions from dead ones."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import attrs
import pytest

from dockerpkg.api.run import PlanRequest, version_suffix
from dockerpkg.api.sessionsignals import stopping_on_signals
from dockerpkg.api.testsession import SessionOptions, TestSession
from dockerpkg.core.labels import is_docker_tag
from dockerpkg.core.plan import FORMAT_VERSION, Op, Plan
from dockerpkg.core.planner import Observed
from dockerpkg.core.report import Outcome, Report, StepOutcome
from dockerpkg.core.serialize import plan_from_json, plan_to_json
from dockerpkg.core.testsession import (
    BuildOutcome,
    VerifyOutcome,
    image_results,
    is_session_id,
    session_suffix,
)
from dockerpkg.core.tree import Tree, load_tree
from dockerpkg.effects.sessionmarks import dead_marks, marks_folder, take_mark
from dockerpkg.effects.tree import read_snapshot
from dockerpkg.errors import DockerPkgError
from tests.support.compat import case_config
from tests.unit.test_planner import CASE, make

R = "registry.example.org/"
SUFFIX = session_suffix("0123456789ab")


def tree_with(suffix: str = "") -> Tree:
    return load_tree(read_snapshot(CASE / "images"), case_config(CASE), suffix)


@pytest.fixture(scope="module")
def tree() -> Tree:
    return tree_with(SUFFIX)


def built(plan: Plan) -> list[str]:
    return [s.image for s in plan.steps if s.op is Op.BUILD]


NOTHING = Observed(offline=False, credentials=True)


class TestSelectionByNames:
    def test_a_name_brings_the_parents_it_needs_and_no_other_image(self, tree: Tree) -> None:
        plan = make(tree, NOTHING, names=("dated",), no_publish=True)
        assert built(plan) == ["native", "security", "dated"]
        assert {s.image for s in plan.steps if s.op is Op.VERIFY} == set(built(plan))

    def test_a_parent_the_daemon_holds_is_used_not_built(self, tree: Tree) -> None:
        native = tree.images["native"].label
        observed = Observed(offline=False, credentials=True, local=frozenset({native}))
        plan = make(tree, observed, names=("leaf",), no_publish=True)
        assert built(plan) == ["debian-rev", "security", "dated", "leaf"]
        assert not [s for s in plan.steps if s.image == "native"]

    def test_several_names_are_one_plan(self, tree: Tree) -> None:
        plan = make(tree, NOTHING, names=("debian-rev", "security"), no_publish=True)
        assert built(plan) == ["native", "debian-rev", "security"]

    def test_an_unknown_name_is_an_error_naming_it(self, tree: Tree) -> None:
        with pytest.raises(DockerPkgError, match="no image named 'nosuch' in the tree"):
            make(tree, NOTHING, names=("dated", "nosuch"))

    def test_no_name_matching_says_so(self, tree: Tree) -> None:
        plan = make(tree, NOTHING, names=(), no_publish=True)
        assert plan.steps == ()
        assert "no image matches the names asked for" in plan.notes

    def test_the_plan_file_keeps_the_names_and_publishing_off(self, tree: Tree) -> None:
        plan = make(tree, NOTHING, names=("dated", "leaf"), no_publish=True)
        text = plan_to_json(plan)
        assert f'"format_version": {FORMAT_VERSION}' in text
        again = plan_from_json(text, "plan.json")
        assert again.options.names == ("dated", "leaf")
        assert again.options.no_publish
        assert again == plan


class TestPublishingOff:
    def test_nothing_is_pushed_though_credentials_exist(self, tree: Tree) -> None:
        plan = make(tree, NOTHING, names=("leaf",), no_publish=True)
        assert not plan.publish
        pushing = {Op.PUBLISH, Op.STAGE, Op.TAG_LATEST, Op.PROMOTE}
        assert not [s for s in plan.steps if s.op in pushing]
        assert "publishing is off: the run asked not to publish (nothing is pushed)" in plan.notes
        assert not [n for n in plan.notes if "no credentials" in n]

    def test_the_same_run_asked_to_publish_does(self, tree: Tree) -> None:
        plan = make(tree, NOTHING, names=("leaf",))
        assert plan.publish
        assert plan.count(Op.PUBLISH) == len(built(plan))


class TestSuffix:
    def test_every_version_and_every_from_carry_it(self, tree: Tree) -> None:
        assert tree.images["dated"].label == R + "dated:1.21-1-20260816" + SUFFIX
        plan = make(tree, NOTHING, names=("dated",), no_publish=True)
        dockerfile = plan.image("dated").dockerfile or ""
        assert f"FROM {R}security:0.4.1-s2{SUFFIX}" in dockerfile

    def test_it_is_short_enough_for_long_versions(self) -> None:
        assert SUFFIX == "-pytest-0123456789ab"
        assert is_docker_tag("1" * 108 + SUFFIX)
        assert not is_docker_tag("1" * 109 + SUFFIX)

    def test_only_a_session_id_makes_one(self) -> None:
        assert is_session_id("0123456789ab")
        for wrong in ("0123456789AB", "0123", "0123456789abc", "../x"):
            with pytest.raises(ValueError, match="not a session id"):
                session_suffix(wrong)

    def test_a_request_gives_its_own_suffix_not_with_snapshot(self) -> None:
        assert version_suffix(PlanRequest(env={}, suffix=SUFFIX), "tree") == SUFFIX
        with pytest.raises(DockerPkgError, match="excludes --nightly and --snapshot"):
            version_suffix(PlanRequest(env={}, suffix=SUFFIX, snapshot=True), "tree")


def report_of(plan: Plan, **outcomes: tuple[Outcome, str | None]) -> Report:
    """Every step of PLAN succeeded but those named `OP_IMAGE` in OUTCOMES."""
    rows = []
    for step in plan.steps:
        outcome, error = outcomes.get(f"{step.op.value}_{step.image}", (Outcome.SUCCEEDED, None))
        rows.append(StepOutcome(step, outcome, error=error))
    return Report(tuple(rows))


class TestResults:
    @pytest.fixture
    def plan(self, tree: Tree) -> Plan:
        return make(tree, NOTHING, names=("dated", "debian-rev"), no_publish=True)

    def test_all_built_and_verified(self, plan: Plan) -> None:
        results = image_results(plan, report_of(plan), ("dated",), "/runs/x")
        assert list(results) == ["native", "debian-rev", "security", "dated"]
        dated = results["dated"]
        assert (dated.build, dated.verify) == (BuildOutcome.BUILT, VerifyOutcome.NO_TEST)
        assert dated.label == plan.image("dated").label
        assert dated.log == "/runs/x/dated.log"
        assert dated.message == ""

    def test_a_failed_parent_fails_its_children_without_building_them(self, plan: Plan) -> None:
        skipped = (Outcome.SKIPPED, None)
        report = report_of(
            plan,
            build_security=(Outcome.FAILED, "RUN false: exit 1"),
            verify_security=skipped,
            build_dated=skipped,
            verify_dated=skipped,
        )
        results = image_results(plan, report, ("dated", "debian-rev"), "/runs/x")
        assert results["security"].build is BuildOutcome.FAILED
        assert "RUN false: exit 1" in results["security"].message
        dated = results["dated"]
        assert (dated.build, dated.verify) == (BuildOutcome.PARENT_FAILED, VerifyOutcome.NOT_RUN)
        assert dated.message == "not built: parent image security was not built"
        assert dated.log is None
        assert results["debian-rev"].build is BuildOutcome.BUILT

    def test_a_failed_pull_is_the_build_failure_it_causes(self, tree: Tree) -> None:
        plan = make(tree, NOTHING, names=("native",), no_publish=True)
        pull = next(s for s in plan.steps if s.op is Op.PULL)
        report = report_of(
            plan,
            **{
                f"pull_{pull.image}": (Outcome.FAILED, "manifest unknown"),
                "build_native": (Outcome.SKIPPED, None),
                "verify_native": (Outcome.SKIPPED, None),
            },
        )
        native = image_results(plan, report, ("native",), "/runs/x")["native"]
        assert native.build is BuildOutcome.FAILED
        assert native.message == f"not built: pull {pull.image} failed: manifest unknown"

    def test_a_failed_verification_and_an_interrupted_run(self, plan: Plan) -> None:
        report = report_of(
            plan,
            verify_native=(Outcome.FAILED, "verification failed (exit 1); see native.log"),
            build_dated=(Outcome.CANCELLED, None),
            verify_dated=(Outcome.CANCELLED, None),
        )
        results = image_results(plan, report, ("dated",), "/runs/x")
        native = results["native"]
        assert (native.build, native.verify) == (BuildOutcome.BUILT, VerifyOutcome.FAILED)
        assert native.message.startswith("verification failed: verification failed (exit 1)")
        assert results["dated"].build is BuildOutcome.NOT_RUN
        assert results["dated"].verify is VerifyOutcome.NOT_RUN

    def test_a_verification_that_ran_passes(self, tree: Tree) -> None:
        plan = make(tree, NOTHING, names=("native",), no_publish=True)
        assert all(s.missing_test for s in plan.steps if s.op is Op.VERIFY)
        # As if native had a test.sh: its verification runs.
        steps = tuple(
            attrs.evolve(s, missing_test=None) if s.op is Op.VERIFY else s for s in plan.steps
        )
        plan = attrs.evolve(plan, steps=steps)
        native = image_results(plan, report_of(plan), ("native",), "/runs/x")["native"]
        assert native.verify is VerifyOutcome.PASSED


_HOLD = """
import sys, time
from dockerpkg.effects.sessionmarks import take_mark
take_mark(sys.argv[1], sys.argv[2])
print("held", flush=True)
time.sleep(60)
"""


class TestMarks:
    def test_a_live_session_is_never_taken_for_dead(self, tmp_path: Path) -> None:
        folder = marks_folder(str(tmp_path / "marks"))
        mine = take_mark("aaaaaaaaaaaa", folder)
        other = take_mark("bbbbbbbbbbbb", folder)
        assert dead_marks(folder) == []
        other.release(forget=False)  # gone without forgetting: as after a kill
        dead = dead_marks(folder, but="aaaaaaaaaaaa")
        assert [m.session_id for m in dead] == ["bbbbbbbbbbbb"]
        assert dead_marks(folder) == []  # taken by whoever found it
        dead[0].release(forget=True)
        mine.release(forget=True)
        mine.release(forget=True)
        assert os.listdir(folder) == []

    def test_a_session_killed_with_sigkill_is_dead(self, tmp_path: Path) -> None:
        folder = marks_folder(str(tmp_path / "marks"))
        holder = subprocess.Popen(
            [sys.executable, "-c", _HOLD, "cccccccccccc", folder],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout is not None
            assert holder.stdout.readline() == "held\n"
            assert dead_marks(folder) == []
        finally:
            holder.send_signal(signal.SIGKILL)
            holder.wait()
        dead = dead_marks(folder)
        assert [m.session_id for m in dead] == ["cccccccccccc"]
        dead[0].release(forget=True)
        assert os.listdir(folder) == []

    def test_a_link_is_no_marks_folder(self, tmp_path: Path) -> None:
        (tmp_path / "elsewhere").mkdir()
        (tmp_path / "marks").symlink_to(tmp_path / "elsewhere")
        with pytest.raises(DockerPkgError, match="not a folder of this user's"):
            marks_folder(str(tmp_path / "marks"))

    def test_only_marks_are_read(self, tmp_path: Path) -> None:
        folder = marks_folder(str(tmp_path / "marks"))
        for name in ("notes.txt", "UPPERCASE000.live", ".dddddddddddd.new"):
            Path(folder, name).write_text("", encoding="utf-8")
        assert dead_marks(folder) == []


class TestSignals:
    def test_ctrl_c_stops_then_cancels_and_sigterm_cancels(self) -> None:
        before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
        with stopping_on_signals() as interrupt:
            cancelled: list[bool] = []
            interrupt.on_cancel(lambda: cancelled.append(True))
            signal.raise_signal(signal.SIGINT)
            assert interrupt.stop.is_set()
            assert cancelled == []
            signal.raise_signal(signal.SIGINT)
            assert cancelled == [True]
        with stopping_on_signals() as interrupt:
            interrupt.on_cancel(lambda: cancelled.append(True))
            signal.raise_signal(signal.SIGTERM)
            assert interrupt.stop.is_set()
            assert cancelled == [True, True]
        assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


class TestSessionWithoutDocker:
    @pytest.fixture
    def session(self, tmp_path: Path) -> TestSession:
        config = str(CASE / "config.yaml")
        options = SessionOptions(config, {}, run_dir=str(tmp_path / "run"))
        return TestSession(str(CASE / "images"), options, marks=str(tmp_path / "marks"))

    def test_its_mark_lives_until_close(self, session: TestSession, tmp_path: Path) -> None:
        assert os.listdir(tmp_path / "marks") == [f"{session.id}.live"]
        assert session.suffix == f"-pytest-{session.id}"
        assert session.container_labels == {"org.dockerpkg.session": session.id}
        session.close()
        session.close()
        assert os.listdir(tmp_path / "marks") == []
        with pytest.raises(DockerPkgError, match="the test session is closed"):
            session.build(["native"])

    def test_a_probe_before_building(self, session: TestSession) -> None:
        with session, pytest.raises(DockerPkgError, match="image native is not built yet"):
            session.probe("native")
        assert session.result("native") is None


def test_a_sweep_that_fails_is_a_warning_and_the_dead_mark_stays(tmp_path: Path) -> None:
    marks = marks_folder(str(tmp_path / "marks"))
    dead = "0123456789ab"
    Path(marks, f"{dead}.live").write_text("")  # no one holds its lock: a dead session's
    env = {"DOCKER_HOST": "unix:///nonexistent/dockerpkg-test.sock"}
    session = TestSession(str(tmp_path), SessionOptions(None, env), marks=marks)
    try:
        session._sweep()  # the daemon does not answer: the removal fails
        assert len(session.warnings) == 1
        assert session.warnings[0].startswith(
            f"could not remove what test sessions {dead} left (they were killed); "
            "the next session tries again: "
        )
        # Kept, and unlocked: the next session finds it dead and tries again.
        assert [m.session_id for m in dead_marks(marks, but=session.id)] == [dead]
    finally:
        session.close()


_TERM_OUTSIDE_A_RUN = """
import os, signal, sys
from dockerpkg.api.testsession import SessionOptions, TestSession
session = TestSession(sys.argv[1], SessionOptions(None, {}), marks=sys.argv[2])
try:
    os.kill(os.getpid(), signal.SIGTERM)
except KeyboardInterrupt:
    print("interrupted", flush=True)
session.close()
print(signal.getsignal(signal.SIGTERM) is signal.SIG_DFL, flush=True)
"""


def test_sigterm_while_a_session_is_open_raises_keyboardinterrupt(tmp_path: Path) -> None:
    script = [_TERM_OUTSIDE_A_RUN, str(tmp_path), str(tmp_path / "marks")]
    done = subprocess.run(
        [sys.executable, "-c", *script], check=False, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    # Raised where the signal landed, and the previous handler is back once closed.
    assert done.stdout.split() == ["interrupted", "True"]
