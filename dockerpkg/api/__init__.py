"""The library's entry points: read inputs, call the pure core, hand back values, carry out
plans (through dockerpkg.effects).

`workspace` reads a tree and its config (and observes the daemon and the registry),
`saved` reads saved plans back, `build` carries out build plans, `versioning` plans and
carries out `update` and `prune`, `review` gives `graph` and `lint`. The CLI only parses,
calls one of these and prints.
"""

from dockerpkg.api.build import (
    apply_build_plan,
    apply_saved_build_plan,
    build_engine,
    builder_env,
    recheck,
    saved_build_run,
)
from dockerpkg.api.saved import (
    TreeLock,
    derived_build_plan,
    load_saved_plan,
    opened_saved_plan,
    read_saved_plan,
    saved_plan_workspace,
)
from dockerpkg.api.workspace import (
    Workspace,
    build_plan,
    builder_set,
    interrupted_update,
    left_behind,
    link_policy,
    load_and_observe,
    load_workspace,
    observe_workspace,
)

__all__ = [
    "TreeLock",
    "Workspace",
    "apply_build_plan",
    "apply_saved_build_plan",
    "build_engine",
    "build_plan",
    "builder_env",
    "builder_set",
    "derived_build_plan",
    "interrupted_update",
    "left_behind",
    "link_policy",
    "load_and_observe",
    "load_saved_plan",
    "load_workspace",
    "observe_workspace",
    "opened_saved_plan",
    "read_saved_plan",
    "recheck",
    "saved_build_run",
    "saved_plan_workspace",
]
