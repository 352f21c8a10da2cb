"""One set of registry gates per command run (effects/registry/gate.py): made by the api
from the config's `registries` limits and given to everything of the run that reaches a
registry, so that every worker, builder and client waits at the same gate of a host. The
observation's daemon is not asked here and the builders are replaced, where a run would
connect to them, by a fake taking the executors' settings (tests/integration runs the
real thing)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, cast

import attrs
import pytest

from dockerpkg import api
from dockerpkg.api import build as api_build
from dockerpkg.api import testsession
from dockerpkg.core.config import Config
from dockerpkg.core.observing import PlatformAnswers
from dockerpkg.core.plan import Plan
from dockerpkg.core.registryrefs import Ref
from dockerpkg.core.report import Report
from dockerpkg.effects import observe
from dockerpkg.effects.credentials import Credentials
from dockerpkg.effects.platformreads import PlatformReader
from dockerpkg.effects.registry import RegistryClient
from dockerpkg.effects.registry.gate import RegistryGates
from tests.support.badinput import CONFIG, write, write_work
from tests.support.fakebuilders import FakeDaemons

REAL_OBSERVATION = observe.Observation


class Observations:
    """Takes the place of the observation's class: a real Observation that asks neither
    the daemon nor (with the run's ask_registry off) the registry, recording each one."""

    def __init__(self) -> None:
        self.made: list[observe.Observation] = []

    def __call__(
        self,
        config: Config,
        credentials: Credentials | None,
        env: Mapping[str, str],
        refs: Iterable[Ref],
        **given: Any,
    ) -> observe.Observation:
        made = REAL_OBSERVATION(config, credentials, env, refs, **{**given, "daemon": False})
        self.made.append(made)
        return made


@pytest.fixture
def observations(monkeypatch: pytest.MonkeyPatch) -> Observations:
    fake = Observations()
    monkeypatch.setattr(observe, "Observation", fake)
    return fake


def work(tmp_path: Path) -> str:
    tree = write_work(tmp_path)
    write(tmp_path / "config.yaml", CONFIG)
    return str(tree)


def online(tmp_path: Path) -> api.PlanRequest:
    """A request that observes (the registry of the tree not asked: see Observations)."""
    return api.PlanRequest(env={}, config_path=str(tmp_path / "config.yaml"), ask_registry=False)


def test_a_builds_observation_and_executors_share_one_set_of_gates(
    tmp_path: Path, observations: Observations, daemons: FakeDaemons
) -> None:
    planned = api.plan_run(work(tmp_path), online(tmp_path))
    [observation] = observations.made
    assert isinstance(planned.gates, RegistryGates)
    assert observation.gates is planned.gates
    # Made from the config's limits.
    assert planned.gates.limits == planned.workspace.config.registries
    api.apply_run(planned, api.apply_options(planned, run_dir="r"), cast("Any", None))
    [settings] = daemons.settings
    assert settings.gates is planned.gates


def test_each_run_has_gates_of_its_own(tmp_path: Path, observations: Observations) -> None:
    tree = work(tmp_path)
    first = api.plan_run(tree, online(tmp_path))
    second = api.plan_run(tree, online(tmp_path))
    assert first.gates is not None
    assert second.gates is not None
    assert first.gates is not second.gates
    assert [o.gates for o in observations.made] == [first.gates, second.gates]


def test_a_callers_gates_are_the_runs(tmp_path: Path, observations: Observations) -> None:
    """As a test session gives its first run's gates to the next ones."""
    given = RegistryGates()
    planned = api.plan_run(work(tmp_path), online(tmp_path), gates=given)
    assert planned.gates is given
    assert observations.made[0].gates is given


def test_an_offline_plan_makes_no_gates_and_its_apply_makes_them(
    tmp_path: Path, daemons: FakeDaemons
) -> None:
    """An offline plan asks no registry (and loads no registry client); carrying it out
    makes the run's gates from the config."""
    request = api.PlanRequest(env={}, config_path=str(tmp_path / "config.yaml"), offline=True)
    planned = api.plan_run(work(tmp_path), request)
    assert planned.gates is None
    api.apply_run(planned, api.apply_options(planned, run_dir="r"), cast("Any", None))
    [settings] = daemons.settings
    assert isinstance(settings.gates, RegistryGates)
    assert settings.gates.limits == planned.workspace.config.registries


def test_a_saved_plans_recheck_and_executors_share_one_set_of_gates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, daemons: FakeDaemons
) -> None:
    asked: list[RegistryGates | None] = []

    def recheck(plan: Plan, *args: Any, gates: RegistryGates | None = None) -> Any:
        asked.append(gates)
        return plan, ()

    monkeypatch.setattr(api_build, "recheck", recheck)
    request = api.PlanRequest(env={}, config_path=str(tmp_path / "config.yaml"), offline=True)
    planned = api.plan_run(work(tmp_path), request)
    saved = api.PlannedRun(planned.plan, planned.workspace, None, {}, saved=True)
    api.apply_run(saved, api.apply_options(saved, run_dir="r"), cast("Any", None))
    [settings] = daemons.settings
    assert asked == [settings.gates]
    assert isinstance(settings.gates, RegistryGates)


def test_the_observation_gives_its_gates_to_every_client_and_reader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its registry clients (the tree's registry's, each base registry's) and its platform
    reader are made with the observation's gates. Their questions are answered here
    (nothing published, no platforms): only what they are made with is looked at."""
    given: list[tuple[str, object]] = []

    class Client(RegistryClient):
        def __init__(self, *args: Any, gates: RegistryGates | None = None, **kw: Any) -> None:
            given.append(("client", gates))
            super().__init__(*args, gates=gates, **kw)

        def digests_many(self, refs: Iterable[Ref], *rest: Any) -> dict[Ref, str | None]:
            return dict.fromkeys(refs)

    class Reader(PlatformReader):
        def __init__(self, *args: Any) -> None:
            given.append(("reader", args[4]))
            super().__init__(*args)

        def read(self, *args: Any, **kw: Any) -> PlatformAnswers:
            return PlatformAnswers()

    monkeypatch.setattr(observe, "RegistryClient", Client)
    monkeypatch.setattr(observe, "PlatformReader", Reader)
    workspace = api.load_workspace(work(tmp_path), str(tmp_path / "config.yaml"), {})
    config = attrs.evolve(
        workspace.config,
        registry="127.0.0.1:9",
        platforms=("linux/amd64",),
        pin_bases=True,
        base_images=("127.0.0.1:8/base/busybox:1.36",),
    )
    gates = RegistryGates()
    observation = observe.Observation(config, None, {}, (), daemon=False, gates=gates)
    observation.result(workspace.tree)
    assert sorted(kind for kind, _ in given) == ["client", "client", "reader"]
    assert all(made is gates for _, made in given)


def test_a_test_sessions_runs_share_one_set_of_gates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every build() of a session plans with the gates of its first: the session is one run
    for the registries it pulls from."""
    seen: list[RegistryGates | None] = []
    made: list[RegistryGates] = []

    def plan_run(directory: str, request: api.PlanRequest, *, gates: Any = None) -> Any:
        seen.append(gates)
        planned = api.plan_run(directory, attrs.evolve(request, offline=True))
        # What an observing plan_run returns: the given gates, else its own.
        made.append(gates or RegistryGates())
        return attrs.evolve(planned, gates=made[-1])

    monkeypatch.setattr(testsession, "plan_run", plan_run)
    options = testsession.SessionOptions(config_path=str(tmp_path / "config.yaml"), env={})
    tree = work(tmp_path)
    with testsession.TestSession(tree, options, marks=str(tmp_path / "marks")) as session:
        monkeypatch.setattr(session, "_sweep", lambda: None)
        monkeypatch.setattr(session, "_clean", lambda ids, tags: {})
        monkeypatch.setattr(session, "_apply", lambda planned, listener: Report(()))
        session.build(["base"])
        session.build(["app"])
    first, second = seen
    assert first is None
    assert second is made[0]


def test_a_test_session_whose_plans_are_offline_keeps_one_set_of_gates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An offline plan makes no gates: the session makes its own at its first build() and
    every later one is carried out with them (not new gates each time)."""
    seen: list[RegistryGates | None] = []
    applied: list[RegistryGates | None] = []

    def plan_run(directory: str, request: api.PlanRequest, *, gates: Any = None) -> Any:
        seen.append(gates)
        return api.plan_run(directory, attrs.evolve(request, offline=True), gates=gates)

    def apply(planned: api.PlannedRun, listener: object) -> Report:
        applied.append(planned.gates)
        return Report(())

    monkeypatch.setattr(testsession, "plan_run", plan_run)
    options = testsession.SessionOptions(config_path=str(tmp_path / "config.yaml"), env={})
    tree = work(tmp_path)
    with testsession.TestSession(tree, options, marks=str(tmp_path / "marks")) as session:
        monkeypatch.setattr(session, "_sweep", lambda: None)
        monkeypatch.setattr(session, "_clean", lambda ids, tags: {})
        monkeypatch.setattr(session, "_apply", apply)
        session.build(["base"])
        session.build(["app"])
    first, second = applied
    assert isinstance(first, RegistryGates)
    assert second is first
    assert seen == [None, first]
    assert first.limits == api.load_workspace(tree, options.config_path, {}).config.registries
