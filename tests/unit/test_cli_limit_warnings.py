"""A planning verb says on stderr which registries limited it (the run's gates counted the
answers), and its plan stays the same: a plan never carries what the registries answered.
The gates here are real, their counts made by waiting at them as a client does; the plan is
an offline one given those gates (tests/integration/test_registry_limits.py plans against a
real registry limiting the run)."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

import attrs
import pytest

from dockerpkg import api
from dockerpkg.api import refs as refs_api
from dockerpkg.api import versioning as versioning_api
from dockerpkg.api import workspace as workspace_api
from dockerpkg.api.limits import limit_warnings
from dockerpkg.cli import main
from dockerpkg.core.registrylimits import Decision, Verdict
from dockerpkg.effects.registry.gate import RegistryGates
from tests.unit.test_refs_verb import work  # noqa: F401 (a fixture)

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1:5000"
QUIET = "registry.example.org"
REAL_PLAN_RUN = api.plan_run
REAL_OBSERVE_TREE = workspace_api.observe_tree


def limited_gates() -> RegistryGates:
    """Gates that saw HOST answer one request with a limit (0.2 s asked, waited out) before
    answering it, and QUIET answer a request without one."""
    gates, never = RegistryGates(), threading.Event()
    gate = gates.host(HOST)
    with gate.slot(never):
        pass
    gate.back_off(Decision(Verdict.RETRY, 0.2, host_wide=True, limited=True))
    with gate.slot(never):
        pass
    with gates.host(QUIET).slot(never):
        pass
    return gates


def plan(
    args: list[str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    gates: RegistryGates | None,
) -> tuple[int, str, str]:
    def plan_run(*given: Any, **options: Any) -> api.PlannedRun:
        return attrs.evolve(REAL_PLAN_RUN(*given, **options), gates=gates)

    monkeypatch.setattr(api, "plan_run", plan_run)
    monkeypatch.chdir(ROOT)
    status = main(["-c", "examples/config.yaml", *args, "--offline", "examples/tree"])
    out, err = capsys.readouterr()
    return status, out, err


WARNING = re.compile(
    rf"^warning: registry {re.escape(HOST)} limited the run: 1 answer limited, "
    r"waited (\d+\.\d) s for its limits$",
    re.MULTILINE,
)


@pytest.mark.parametrize("fmt", [[], ["--json"]])
def test_plan_warns_of_a_limited_registry_on_stderr_and_its_plan_is_unchanged(
    fmt: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    status, out, err = plan(["plan", *fmt], capsys, monkeypatch, limited_gates())
    assert status == 0, err
    [waited] = WARNING.findall(err)
    assert float(waited) >= 0.2  # the wait asked was waited out, and counted
    assert QUIET not in err  # a host that did not limit the run is not named
    assert "limited" not in out
    unlimited_status, unlimited, quiet_err = plan(["plan", *fmt], capsys, monkeypatch, None)
    assert unlimited_status == 0
    assert out == unlimited
    assert "limited the run" not in quiet_err


def test_no_warning_without_a_limit() -> None:
    gates, never = RegistryGates(), threading.Event()
    with gates.host(HOST).slot(never):
        pass
    assert limit_warnings(gates) == []
    assert limit_warnings(None) == []


def ask_limited(gates: RegistryGates) -> None:
    """Ask HOST once through GATES as a client does, the first answer limiting the run."""
    gate, never = gates.host(HOST), threading.Event()
    with gate.slot(never):
        pass
    gate.back_off(Decision(Verdict.RETRY, 0.2, host_wide=True, limited=True))
    with gate.slot(never):
        pass


@pytest.mark.usefixtures("work")
def test_refs_online_warns_of_a_limited_registry(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The registry's answers are not what is looked at: the asking waits at the gates the
    run gave it, and those are what the warning counts."""

    def published(*given: Any) -> dict[str, Any]:
        ask_limited(given[-1])
        return {}

    monkeypatch.setattr(refs_api, "_published", published)
    status = main(["-c", "config.yaml", "refs", "--online", "tree", "uses"])
    out, err = capsys.readouterr()
    assert status in (0, 2), err
    [waited] = WARNING.findall(err)
    assert float(waited) >= 0.2
    assert "limited the run" not in out
    # Offline, no registry is asked and nothing is said.
    status = main(["-c", "config.yaml", "refs", "tree", "uses"])
    assert "limited the run" not in capsys.readouterr().err


def test_update_changed_bases_warns_of_a_limited_registry(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The observation (made offline here: no registry to ask) waits at the run's gates."""

    def observe_tree(*given: Any, **options: Any) -> Any:
        found = REAL_OBSERVE_TREE(*given, **{**options, "offline": True})
        gates = RegistryGates()
        ask_limited(gates)
        return (*found[:4], gates)

    monkeypatch.setattr(versioning_api, "observe_tree", observe_tree)
    monkeypatch.chdir(ROOT)
    args = ["-c", "examples/config.yaml", "plan", "update", "--changed-bases"]
    status = main([*args, "examples/tree"])
    out, err = capsys.readouterr()
    assert status == 0, err
    [waited] = WARNING.findall(err)
    assert float(waited) >= 0.2
    assert "limited the run" not in out
