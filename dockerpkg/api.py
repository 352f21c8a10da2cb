"""The library's entry points: read inputs, call the pure core, hand back values.

Each function reads the files it needs (through dockerpkg.effects) and otherwise defers to
the core, so tests can use the core directly and tools can use these without the CLI.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from dockerpkg.core.config import Config
from dockerpkg.core.plan import DEFAULT_OPTIONS, BuildOptions, Plan
from dockerpkg.core.planner import OFFLINE, Observed, inputs_digest, plan_build
from dockerpkg.core.spec import Snapshot
from dockerpkg.core.tree import Tree, analyze_tree
from dockerpkg.effects.configfile import LoadedConfig, read_config
from dockerpkg.effects.tree import read_snapshot
from dockerpkg.errors import DockerPkgError, Problem, Severity


@attrs.frozen
class Workspace:
    """A tree and its config, read once and resolved."""

    directory: str
    config: Config
    snapshot: Snapshot
    tree: Tree
    digest: str
    warnings: tuple[Problem, ...]


def load_workspace(
    directory: str, config_path: str | None, env: Mapping[str, str], suffix: str = ""
) -> Workspace:
    """Read config and tree and resolve them; raises DockerPkgError with every problem."""
    loaded: LoadedConfig = read_config(config_path, env)
    snapshot = read_snapshot(directory)
    analysis = analyze_tree(snapshot, loaded.config, suffix)
    problems = loaded.warnings + analysis.problems
    if analysis.tree is None or any(p.severity is Severity.ERROR for p in problems):
        raise DockerPkgError(problems)
    return Workspace(
        directory=directory,
        config=loaded.config,
        snapshot=snapshot,
        tree=analysis.tree,
        digest=inputs_digest(snapshot, loaded.files),
        warnings=problems,
    )


def build_plan(
    workspace: Workspace, observed: Observed = OFFLINE, options: BuildOptions = DEFAULT_OPTIONS
) -> Plan:
    """The build plan of a workspace for the observed state (offline: nothing exists)."""
    return plan_build(
        workspace.tree,
        workspace.config,
        observed,
        directory=workspace.directory,
        digest=workspace.digest,
        options=options,
    )
