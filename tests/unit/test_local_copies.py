"""Where a failed pull may go on with the daemon's own copy when no daemon was asked while
planning (several builders, each with its own daemon): every pull of the plan, the parents a
builder fetches from the registry, and the pulls a saved plan gains for images published since
it was made. The executor still looks for the copy on its own daemon when the pull fails."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockerpkg import api
from dockerpkg.core.observing import Asked, RegistryAnswers, fold_observed
from dockerpkg.core.plan import Op, Plan
from dockerpkg.core.planner import Observed
from dockerpkg.core.recheck import without_published
from dockerpkg.core.serialize import plan_to_text
from dockerpkg.core.stepchoices import local_copies
from dockerpkg.effects.executor import Executor
from dockerpkg.effects.tasks import TaskFailedError
from tests.support.fakedaemon import FakeDaemon, FakeRegistry
from tests.unit import test_executor as executor_tests
from tests.unit.test_executor import (
    APP_LABEL,
    BASE,
    BASE_LABEL,
    CONFIG,
    HOST,
    Listener,
    planned,
    settings_for,
)

tree = executor_tests.tree  # the tree of base and app
TWO_BUILDERS = "builders:\n  - url: tcp://one:2375\n  - url: tcp://two:2375\n"
# What effects observe with several builders: the registry, no daemon.
NO_DAEMON = Observed(offline=False, credentials=True, daemon_asked=False)


@pytest.fixture
def two_builders(tree: Path) -> Path:
    (tree / "config.yaml").write_text(CONFIG + TWO_BUILDERS, "utf-8")
    return tree


def pulls(plan: Plan) -> dict[str | None, bool]:
    return {s.label or s.image: s.local_copy for s in plan.steps if s.op is Op.PULL}


class TestPlanned:
    def test_with_no_daemon_asked_every_pull_may_use_the_local_copy(
        self, two_builders: Path
    ) -> None:
        _, plan = planned(two_builders, NO_DAEMON)
        assert len(plan.builders) == 2
        assert pulls(plan) == {BASE: True}
        assert "[else the local copy]" in plan_to_text(plan)
        # One daemon asked, which held no copy: the pull has nothing to fall back on.
        _, asked = planned(two_builders, Observed(offline=False, credentials=True))
        assert pulls(asked) == {BASE: False}

    def test_the_observation_says_whether_the_daemon_was_asked(self, tree: Path) -> None:
        workspace = api.load_workspace(str(tree / "images"), str(tree / "config.yaml"), {})
        folded = [
            fold_observed(
                workspace.tree, workspace.config, Asked(), RegistryAnswers(), daemon_asked=asked
            )
            for asked in (True, False)
        ]
        assert [o.daemon_asked for o in folded] == [True, False]

    def test_several_builders_fetch_parents_with_the_fallback(self, two_builders: Path) -> None:
        _, plan = planned(two_builders, NO_DAEMON)
        assert {BASE, BASE_LABEL, APP_LABEL} <= local_copies(plan)

    def test_one_builder_fetches_nothing_with_the_fallback(self, tree: Path) -> None:
        _, plan = planned(tree)
        assert local_copies(plan) == frozenset()

    def test_pulls_of_images_published_since_may_use_the_local_copy(self, tree: Path) -> None:
        _, plan = planned(tree)
        rechecked, gone = without_published(plan, frozenset({BASE_LABEL}))
        assert gone == (BASE_LABEL,)
        assert pulls(rechecked)[BASE_LABEL] is True


class TestParentFetches:
    def test_a_failed_fetch_goes_on_with_the_builders_copy(
        self, two_builders: Path, tmp_path: Path
    ) -> None:
        workspace, plan = planned(two_builders, NO_DAEMON)
        daemon = FakeDaemon({BASE_LABEL: "sha256:here"}, registry=FakeRegistry(HOST))
        settings = settings_for(workspace, plan, tmp_path)
        executor = Executor(daemon, daemon.registry, settings, Listener())
        assert executor.pull(BASE_LABEL, "app") == "local copy"
        log = (tmp_path / "app.log").read_text("utf-8")
        assert "using the local copy" in log

    def test_without_a_copy_the_fetch_fails(self, two_builders: Path, tmp_path: Path) -> None:
        workspace, plan = planned(two_builders, NO_DAEMON)
        daemon = FakeDaemon(registry=FakeRegistry(HOST))
        settings = settings_for(workspace, plan, tmp_path)
        executor = Executor(daemon, daemon.registry, settings, Listener())
        with pytest.raises(TaskFailedError):
            executor.pull(BASE_LABEL, "app")
