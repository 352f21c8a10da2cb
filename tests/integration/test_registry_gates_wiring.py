"""One set of registry gates per run, against the real daemon and a real registry: the plan's
observation asks the registry through the gates the run carries on to apply, made with the
config's `registries` limits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from dockerpkg import api
from tests.integration.test_registry import publish
from tests.support.services import Registry
from tests.support.trees import unique_prefix
from tests.support.updates import write_tree


def test_a_plans_observation_asks_through_the_runs_gates(
    tmp_path: Path, registry: Registry, docker_client: object
) -> None:
    prefix = unique_prefix()
    config = (
        f"registry: {registry.host}\nnamespace: {prefix}\n"
        f"registries:\n  {registry.host}:\n    max_requests: 2\n"
    )
    write_tree(tmp_path, {"base": ("1.0", []), "app": ("2.0", ["base"])}, config)
    publish(registry, f"{prefix}/base", ["1.0"])
    request = api.PlanRequest(env=dict(os.environ), config_path=str(tmp_path / "config.yaml"))
    planned = api.plan_run(str(tmp_path / "images"), request)
    assert planned.plan.image("base").label == f"{registry.host}/{prefix}/base:1.0"
    gates = planned.gates
    assert gates is not None
    assert gates.host(registry.host).limits.max_requests == 2
    [usage] = [u for u in gates.usage() if u.host == registry.host]
    # The checks of base and app went through this run's gate of the registry.
    assert usage.requests >= 1
    assert (usage.retries, usage.limited) == (0, 0)


def test_a_build_with_nothing_to_do_reports_what_it_asked(
    tmp_path: Path, registry: Registry, docker_client: object
) -> None:
    prefix = unique_prefix()
    config = f"registry: {registry.host}\nnamespace: {prefix}\ncheck_latest: false\n"
    write_tree(tmp_path, {"base": ("1.0", []), "app": ("2.0", ["base"])}, config)
    publish(registry, f"{prefix}/base", ["1.0"])
    publish(registry, f"{prefix}/app", ["2.0"])
    report = tmp_path / "report.json"
    argv = ["-c", str(tmp_path / "config.yaml"), "build", "--report", str(report)]
    done = subprocess.run(
        [sys.executable, "-m", "dockerpkg", *argv, str(tmp_path / "images")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "nothing to do" in done.stdout
    data = json.loads(report.read_text(encoding="utf-8"))
    assert data["steps"] == []
    [usage] = [u for u in data["registries"] if u["host"] == registry.host]
    # Both images' checks, counted on the run's gate of the registry.
    assert usage["requests"] >= 2
    assert (usage["retries"], usage["limited"]) == (0, 0)
