"""dockerpkg: build, verify, publish, prune and version trees of Docker images.

The public API: read a tree and its config, plan, and (with Docker) observe and apply;
`plan_run` and `apply_run` do a build run in one call each.
`dockerpkg.core` is the pure part and needs no Docker at all.
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dockerpkg.api import (
        ApplyOptions,
        PlanRequest,
        Workspace,
        apply_build_plan,
        apply_options,
        apply_run,
        build_plan,
        load_and_observe,
        load_saved_plan,
        load_workspace,
        observe_workspace,
        plan_run,
    )
    from dockerpkg.core.config import Config, load_config
    from dockerpkg.core.plan import Plan
    from dockerpkg.core.planner import Observed, plan_build
    from dockerpkg.core.serialize import plan_from_json, plan_to_json, plan_to_text
    from dockerpkg.core.tree import Tree, load_tree
    from dockerpkg.effects.tree import read_snapshot
    from dockerpkg.errors import DockerPkgError, Problem

# Imported on first use, so that `import dockerpkg.core...` does not load docker-py.
_WHERE = {
    "ApplyOptions": "dockerpkg.api",
    "PlanRequest": "dockerpkg.api",
    "Workspace": "dockerpkg.api",
    "apply_build_plan": "dockerpkg.api",
    "apply_options": "dockerpkg.api",
    "apply_run": "dockerpkg.api",
    "plan_run": "dockerpkg.api",
    "build_plan": "dockerpkg.api",
    "load_saved_plan": "dockerpkg.api",
    "load_and_observe": "dockerpkg.api",
    "load_workspace": "dockerpkg.api",
    "observe_workspace": "dockerpkg.api",
    "Config": "dockerpkg.core.config",
    "load_config": "dockerpkg.core.config",
    "Plan": "dockerpkg.core.plan",
    "Observed": "dockerpkg.core.planner",
    "plan_build": "dockerpkg.core.planner",
    "plan_from_json": "dockerpkg.core.serialize",
    "plan_to_json": "dockerpkg.core.serialize",
    "plan_to_text": "dockerpkg.core.serialize",
    "Tree": "dockerpkg.core.tree",
    "load_tree": "dockerpkg.core.tree",
    "read_snapshot": "dockerpkg.effects.tree",
    "DockerPkgError": "dockerpkg.errors",
    "Problem": "dockerpkg.errors",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'dockerpkg' has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)


__all__ = [
    "ApplyOptions",
    "Config",
    "DockerPkgError",
    "Observed",
    "Plan",
    "PlanRequest",
    "Problem",
    "Tree",
    "Workspace",
    "apply_build_plan",
    "apply_options",
    "apply_run",
    "build_plan",
    "load_and_observe",
    "load_config",
    "load_saved_plan",
    "load_tree",
    "load_workspace",
    "observe_workspace",
    "plan_build",
    "plan_from_json",
    "plan_run",
    "plan_to_json",
    "plan_to_text",
    "read_snapshot",
]
