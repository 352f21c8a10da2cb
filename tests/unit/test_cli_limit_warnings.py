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
from dockerpkg.api.limits import limit_warnings
from dockerpkg.cli import main
from dockerpkg.core.registrylimits import Decision, Verdict
from dockerpkg.effects.registry.gate import RegistryGates

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1:5000"
QUIET = "registry.example.org"
REAL_PLAN_RUN = api.plan_run


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
