"""`refs`: find where other files use the tree's images, plan the edits that move outdated
references to the current versions, and write them all or none."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import attrs

from dockerpkg.api.workspace import Workspace, load_workspace
from dockerpkg.core.config import key_location
from dockerpkg.core.labels import join_repository
from dockerpkg.core.usages import (
    Published,
    TreeFacts,
    UsagePlan,
    UseState,
    needle,
    plan_usages,
    tree_facts,
)
from dockerpkg.effects.usagefiles import candidate_files, read_candidates
from dockerpkg.effects.usagewrites import file_edits, finish_interrupted, write_edits
from dockerpkg.errors import DockerPkgError


@attrs.frozen
class RefsRun:
    plan: UsagePlan
    workspace: Workspace
    finished: tuple[str, ...] | None  # files an interrupted refs --apply wrote, finished now


def refs_plan(
    directory: str,
    config_path: str | None,
    env: Mapping[str, str],
    paths: Sequence[str],
    *,
    online: bool = False,
) -> RefsRun:
    """The references to DIRECTORY's images in PATHS (none: the config's `refs: paths`);
    ONLINE also asks the registry whether each current version is published. What an
    interrupted `refs --apply` left is finished first."""
    finished = finish_interrupted(directory, [os.getcwd()])
    workspace = load_workspace(directory, config_path, env, render=False)
    config = workspace.config
    ignore = config.refs.ignore
    if not paths:
        if not config.refs.paths:
            raise DockerPkgError.single(
                "refs", "give the files or folders to look through, or set the config's refs: paths"
            )
        base = os.path.dirname(key_location(_files(workspace), "refs").path)
        paths = [p if os.path.isabs(p) else os.path.join(base, p) for p in config.refs.paths]
        paths = [os.path.relpath(p) if not os.path.isabs(p) else p for p in paths]
    facts = tree_facts(workspace.tree, config)
    files, count = read_candidates(candidate_files(paths, ignore, env), needle(facts))
    published = _published(workspace, facts, files, env) if online else None
    plan = plan_usages(directory, files, facts, published, scanned=count)
    return RefsRun(plan, workspace, None if finished is None else tuple(finished))


def _files(workspace: Workspace) -> list[tuple[str, str]]:
    found = []
    for path in workspace.config_files:
        try:
            with open(path, encoding="utf-8") as handle:
                found.append((path, handle.read()))
        except OSError:
            continue
    return found


def _published(
    workspace: Workspace,
    facts: TreeFacts,
    files: Sequence[tuple[str, str, str]],
    env: Mapping[str, str],
) -> dict[str, Published]:
    """What the registry holds of the current version of each image FILES refer to."""
    from dockerpkg.core.labels import repository_path
    from dockerpkg.core.usages import find_uses
    from dockerpkg.effects.observe import credentials_for, registry_client
    from dockerpkg.effects.registry import RegistryError

    config = workspace.config
    named = sorted(
        {u.image for path, text, _ in files for u in find_uses(path, text, facts) if u.image}
    )
    found = {}
    credentials = credentials_for(config, env)
    try:
        with registry_client(config, credentials, env) as client:
            for name in named:
                repository = join_repository(config.registry, config.namespace, name)
                current = facts.current[name]
                digest = client.manifest_digest(
                    repository_path(repository, config.registry), current
                )
                found[name] = Published(
                    frozenset({current}) if digest else frozenset(), current_digest=digest
                )
    except RegistryError as exc:
        raise DockerPkgError.single("registry", f"cannot ask the registry: {exc}") from None
    return found


def check_plan(plan: UsagePlan) -> None:
    """A plan with unknown references cannot be applied: a deleted image is still in use."""
    unknown = [u for u in plan.uses if u.state is UseState.UNKNOWN]
    if unknown:
        raise DockerPkgError.single(
            unknown[0].path,
            f"{len(unknown)} reference(s) to images the tree does not have (the first: "
            f"{unknown[0].text}); nothing was written",
            unknown[0].line,
        )


def write_refs(plan: UsagePlan, directory: str) -> tuple[str, ...]:
    """Make PLAN's edits, every file or none (refused when one changed since it was made);
    returns the files written."""
    check_plan(plan)
    digests = {f.path: f.sha256 for f in plan.files}
    edits = file_edits(plan.edits, digests, os.getcwd())
    write_edits(directory, edits)
    return tuple(e.shown for e in edits)
