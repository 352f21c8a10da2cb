"""dockerpkg: build, verify, publish, prune and version trees of Docker images.

The public API: read a tree and its config, plan, and (with Docker) observe and apply.
`dockerpkg.core` is the pure part and needs no Docker at all.
"""

from dockerpkg.api import (
    Workspace,
    apply_build_plan,
    build_plan,
    load_saved_plan,
    load_workspace,
    observe_workspace,
)
from dockerpkg.core.config import Config, load_config
from dockerpkg.core.plan import Plan
from dockerpkg.core.planner import Observed, plan_build
from dockerpkg.core.serialize import plan_from_json, plan_to_json, plan_to_text
from dockerpkg.core.tree import Tree, load_tree
from dockerpkg.effects.tree import read_snapshot
from dockerpkg.errors import DockerPkgError, Problem

__all__ = [
    "Config",
    "DockerPkgError",
    "Observed",
    "Plan",
    "Problem",
    "Tree",
    "Workspace",
    "apply_build_plan",
    "build_plan",
    "load_config",
    "load_saved_plan",
    "load_tree",
    "load_workspace",
    "observe_workspace",
    "plan_build",
    "plan_from_json",
    "plan_to_json",
    "plan_to_text",
    "read_snapshot",
]
