"""The library's entry points: read inputs, call the pure core, hand back values.

Each function reads the files it needs (through dockerpkg.effects) and otherwise defers to
the core, so tests can use the core directly and tools can use these without the CLI.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import IO

import attrs

from dockerpkg.core.config import Config
from dockerpkg.core.plan import DEFAULT_OPTIONS, BuildOptions, Plan
from dockerpkg.core.planner import OFFLINE, Observed, inputs_digest, plan_build
from dockerpkg.core.report import Report
from dockerpkg.core.serialize import plan_from_json
from dockerpkg.core.spec import Snapshot
from dockerpkg.core.tree import Tree, analyze_tree
from dockerpkg.effects.configfile import LoadedConfig, read_config
from dockerpkg.effects.credentials import Credentials
from dockerpkg.effects.scheduler import Interrupt, Listener
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
    directory: str,
    config_path: str | None,
    env: Mapping[str, str],
    suffix: str = "",
    *,
    render: bool = True,
) -> Workspace:
    """Read config and tree and resolve them; raises DockerPkgError with every problem.

    render=False leaves Dockerfiles unrendered where the dependency graph does not need them
    (build_plan renders what it builds): for runs that build little or nothing.
    """
    # Plans record the tree relative to the current folder: no absolute path in their JSON.
    directory = os.path.relpath(directory)
    loaded: LoadedConfig = read_config(config_path, env)
    snapshot = read_snapshot(directory)
    analysis = analyze_tree(snapshot, loaded.config, suffix, render=render)
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


def observe_workspace(
    workspace: Workspace, env: Mapping[str, str], *, offline: bool
) -> tuple[Observed, Credentials | None]:
    """Credentials (local files only), then, unless offline, the daemon and the registry."""
    # docker-py is loaded only by the runs that talk to Docker: offline ones start faster.
    from dockerpkg.effects import daemon
    from dockerpkg.effects.observe import credentials_for, observe

    credentials = credentials_for(workspace.config, env)
    if offline:
        return Observed(offline=True, credentials=credentials is not None), credentials
    try:
        client = daemon.connect(env)
    except daemon.DaemonError as exc:
        raise DockerPkgError.single("docker", f"{exc} (use --offline to plan without it)") from None
    try:
        return observe(workspace.tree, workspace.config, client, credentials), credentials
    finally:
        client.close()


def load_saved_plan(
    path: str, config_path: str | None, env: Mapping[str, str]
) -> tuple[Plan, Workspace]:
    """A saved plan and its tree, refused when anything it was made from has changed."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise DockerPkgError.single(path, f"cannot read plan: {exc.strerror}") from None
    plan = plan_from_json(text, path)
    workspace = load_workspace(plan.directory, config_path, env, plan.options.suffix, render=False)
    if workspace.digest != plan.digest:
        raise DockerPkgError.single(
            path,
            f"stale plan: the tree in {plan.directory} or the config changed since the plan "
            "was made; make a new plan",
        )
    return plan, workspace


def apply_build_plan(
    plan: Plan,
    workspace: Workspace,
    env: Mapping[str, str],
    credentials: Credentials | None,
    *,
    run_dir: Path,
    listener: Listener,
    jobs: int = 1,
    echo: IO[str] | None = None,
    interrupt: Interrupt | None = None,
    build_timeout: float | None = None,
    log_limit: int | None = None,
) -> Report:
    """Execute the plan's steps; failures are in the report, not raised.

    BUILD_TIMEOUT (seconds; default: the config's `build_timeout`, else none) bounds each
    image's build; LOG_LIMIT (characters) bounds what each step writes to its log.
    """
    from dockerpkg.effects import daemon
    from dockerpkg.effects.apply import Executor, Settings
    from dockerpkg.effects.observe import registry_client

    try:
        client = daemon.connect(env)
    except daemon.DaemonError as exc:
        raise DockerPkgError.single("docker", str(exc)) from None
    settings = Settings(
        directory=Path(workspace.directory),
        run_dir=run_dir,
        config=workspace.config,
        credentials=credentials,
        use_cache=plan.options.use_cache,
        jobs=jobs,
        echo=echo,
        build_timeout=workspace.config.build_timeout if build_timeout is None else build_timeout,
    )
    if log_limit is not None:
        settings = attrs.evolve(settings, log_limit=log_limit)
    registry = registry_client(workspace.config, credentials) if plan.publish else None
    try:
        return Executor(client, registry, settings, listener).run(plan, interrupt)
    finally:
        if registry is not None:
            registry.close()
        client.close()
