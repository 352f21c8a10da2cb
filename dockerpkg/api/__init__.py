"""The library's entry points: read inputs, call the pure core, hand back values, carry out
plans (through dockerpkg.effects).

`run` plans a build run in one call (`plan_run`) and decides what applying it takes from
the run (`apply_options`), `build` carries it out (`apply_run`); `workspace` reads a tree
and its config (and observes the daemon and the registry), `saved` reads saved plans back,
`versioning` plans and carries out `update` and `prune`, `review` gives `graph` and `lint`.
The CLI only parses, calls one of these and prints; what else it needs of the effects (the
tree's lock, progress, interrupts) it takes from here, never from dockerpkg.effects.
"""

from dockerpkg.api.build import (
    PlannedRun,
    apply_build_plan,
    apply_run,
    apply_saved_build_plan,
    build_engine,
    builder_env,
    recheck,
    saved_build_run,
    saved_run,
)
from dockerpkg.api.limits import limit_warnings, planning_report
from dockerpkg.api.run import (
    Interrupt,
    LineProgress,
    Listener,
    LiveProgress,
    PlanRequest,
    apply_options,
    plan_run,
)
from dockerpkg.api.saved import (
    TreeLock,
    derived_build_plan,
    load_saved_plan,
    opened_saved_plan,
    read_plan_text,
    read_saved_plan,
    saved_plan_workspace,
    tree_lock,
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
from dockerpkg.core.applyoptions import ApplyOptions

__all__ = [
    "ApplyOptions",
    "Interrupt",
    "LineProgress",
    "Listener",
    "LiveProgress",
    "PlanRequest",
    "PlannedRun",
    "TreeLock",
    "Workspace",
    "apply_build_plan",
    "apply_options",
    "apply_run",
    "apply_saved_build_plan",
    "build_engine",
    "build_plan",
    "builder_env",
    "builder_set",
    "derived_build_plan",
    "interrupted_update",
    "left_behind",
    "limit_warnings",
    "link_policy",
    "load_and_observe",
    "load_saved_plan",
    "load_workspace",
    "observe_workspace",
    "opened_saved_plan",
    "plan_run",
    "planning_report",
    "read_plan_text",
    "read_saved_plan",
    "recheck",
    "saved_build_run",
    "saved_plan_workspace",
    "saved_run",
    "tree_lock",
]
