"""One set of registry gates per run, against the real daemon and a real registry: the plan's
observation asks the registry through the gates the run carries on to apply, made with the
config's `registries` limits."""

from __future__ import annotations

import os
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
