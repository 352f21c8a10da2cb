"""`refs`: find where other files use the tree's images, plan the edits that move outdated
references to the current versions, and write them all or none."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import attrs

from dockerpkg.api.workspace import Workspace, load_workspace, run_gates
from dockerpkg.core.config import key_location
from dockerpkg.core.editmatch import EditRules
from dockerpkg.core.labels import join_repository
from dockerpkg.core.plan import Plan
from dockerpkg.core.refsplan import (
    Published,
    TreeFacts,
    UpdateWithRefs,
    UsagePlan,
    UseState,
    file_digest,
    moved_facts,
    needle,
    plan_usages,
    tree_facts,
)
from dockerpkg.effects.refsfiles import candidate_files, read_candidates
from dockerpkg.effects.refswrites import FileEdit, file_edits, finish_interrupted, write_edits
from dockerpkg.effects.workfiles import REFS_JOURNAL, REFS_JOURNAL_TEMP
from dockerpkg.errors import DockerPkgError

if TYPE_CHECKING:
    from dockerpkg.effects.registry.gate import RegistryGates


@attrs.frozen
class RefsRun:
    plan: UsagePlan
    workspace: Workspace
    finished: tuple[str, ...] | None  # files an interrupted refs --apply wrote, finished now
    # Where the plan looked (the PATHs given, else the config's refs: paths): where its edits
    # may go besides the tree.
    paths: tuple[str, ...] = ()
    # The run's registry gates (online only): what the CLI says of the registries' limits.
    gates: RegistryGates | None = attrs.field(default=None, eq=False, repr=False)


def _configured_paths(workspace: Workspace) -> list[str]:
    """The config's `refs: paths`, relative to the config file naming them."""
    config = workspace.config
    if not config.refs.paths:
        raise DockerPkgError.single(
            "refs", "give the files or folders to look through, or set the config's refs: paths"
        )
    base = os.path.dirname(key_location(_files(workspace), "refs").path)
    found = [p if os.path.isabs(p) else os.path.join(base, p) for p in config.refs.paths]
    return [p if os.path.isabs(p) else os.path.normpath(p) for p in found]


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
    finished = _finish_journal(directory, config_path, env, paths)
    workspace = load_workspace(directory, config_path, env, render=False)
    config = workspace.config
    paths = list(paths) or _configured_paths(workspace)
    facts = tree_facts(workspace.tree, config)
    read = read_candidates(candidate_files(paths, config.refs.ignore, env), needle(facts))
    gates = run_gates(config) if online else None
    published = None if gates is None else _published(workspace, facts, read.files, env, gates)
    plan = plan_usages(
        directory,
        read.files,
        facts,
        published,
        scanned=read.count,
        skipped=read.skipped,
        unedited=read.unedited,
    )
    return RefsRun(
        plan, workspace, None if finished is None else tuple(finished), tuple(paths), gates
    )


def _finish_journal(
    directory: str, config_path: str | None, env: Mapping[str, str], paths: Sequence[str]
) -> list[str] | None:
    """Finish what an interrupted refs --apply left in DIRECTORY: the edits refs derives
    itself, in files inside the tree or under the PATHS given on this command line only
    (never the current folder, nor what the journal says)."""
    if not any(
        os.path.lexists(os.path.join(directory, n)) for n in (REFS_JOURNAL, REFS_JOURNAL_TEMP)
    ):
        return None
    workspace = load_workspace(directory, config_path, env, render=False, refs_journal=True)
    return finish_interrupted(directory, list(paths), edit_rules(workspace))


def edit_rules(workspace: Workspace, facts: TreeFacts | None = None) -> EditRules:
    """What edits of WORKSPACE's users and changelogs may be (FACTS: the tree's, else the
    tree's facts now)."""
    return EditRules(
        facts or tree_facts(workspace.tree, workspace.config),
        frozenset(
            os.path.realpath(os.path.join(workspace.directory, source.file("changelog")))
            for source in workspace.snapshot.images
        ),
    )


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
    gates: RegistryGates,
) -> dict[str, Published]:
    """What the registry holds of the current version of each image FILES refer to (its
    client waiting at GATES, the run's)."""
    from dockerpkg.core.labels import repository_path
    from dockerpkg.core.refsplan import find_uses
    from dockerpkg.effects.credentials import credentials_for
    from dockerpkg.effects.observe import registry_client
    from dockerpkg.effects.registry import RegistryError

    config = workspace.config
    named = sorted(
        {u.image for path, text, _ in files for u in find_uses(path, text, facts) if u.image}
    )
    found = {}
    credentials = credentials_for(config, env)
    try:
        with registry_client(config, credentials, env, gates=gates) as client:
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


def write_refs(
    plan: UsagePlan, workspace: Workspace, within: Sequence[str] = ()
) -> tuple[str, ...]:
    """Make PLAN's edits, every file or none (refused when one changed since it was made),
    in files inside WORKSPACE's tree or WITHIN (the paths given, or the config's), and only
    the edits refs derives itself from the tree (a saved plan is a claim); returns the files
    written."""
    check_plan(plan)
    digests = {f.path: f.sha256 for f in plan.files}
    unread = sorted({use.path for use in plan.edits if use.path not in digests})
    if unread:
        raise DockerPkgError.single(
            unread[0], "not a plan dockerpkg made: an edit of a file it gives no digest of"
        )
    edits = file_edits(plan.edits, digests, os.getcwd())
    write_edits(workspace.directory, edits, list(within), rules=edit_rules(workspace))
    return tuple(e.shown for e in edits)


def write_saved_refs(
    plan: UsagePlan, config_path: str | None, env: Mapping[str, str], paths: Sequence[str]
) -> tuple[str, ...]:
    """`apply refs REFS.json`: PLAN's edits (see write_refs), in its tree, the PATHS given on
    the command line and the config's refs: paths; the files written."""
    workspace = load_workspace(plan.directory, config_path, env, render=False)
    configured = _configured_paths(workspace) if workspace.config.refs.paths else []
    return write_refs(plan, workspace, [*paths, *configured])


def plan_update_with_refs(
    plan: Plan, workspace: Workspace, env: Mapping[str, str]
) -> UpdateWithRefs:
    """`update --refs`: one plan of PLAN's changelog entries and the edits that move the
    users in the config's `refs: paths` to its new versions (read now; written, unless a file
    changed since, by write_update_with_refs)."""
    config = workspace.config
    facts = moved_facts(tree_facts(workspace.tree, config), plan)
    paths = _configured_paths(workspace)
    read = read_candidates(candidate_files(paths, config.refs.ignore, env), needle(facts))
    moved = plan_usages(
        workspace.directory,
        read.files,
        facts,
        scanned=read.count,
        skipped=read.skipped,
        unedited=read.unedited,
    )
    return UpdateWithRefs(plan, moved, tuple(paths), facts)


def write_update_with_refs(plan: UpdateWithRefs, workspace: Workspace) -> tuple[str, ...]:
    """Write the `update --refs` PLAN made from WORKSPACE: its changelog entries and its
    users' edits in one write, all files or none (refused when one changed since the plan
    was made). Returns the changelogs written."""
    from dockerpkg.api.versioning import check_update, originals

    check_update(plan.update, workspace)
    check_plan(plan.refs)
    texts = originals(workspace)
    entries = [
        FileEdit(
            os.path.join(workspace.directory, edit.path),
            os.path.realpath(os.path.join(workspace.directory, edit.path)),
            file_digest(texts[edit.path].encode("utf-8")),
            ((0, 0, edit.entry),),
        )
        for edit in plan.update.edits
    ]
    digests = {f.path: f.sha256 for f in plan.refs.files}
    users = file_edits(plan.refs.edits, digests, os.getcwd())
    rules = edit_rules(workspace, plan.facts)
    write_edits(workspace.directory, [*entries, *users], plan.paths, rules=rules)
    return tuple(edit.path for edit in plan.update.edits)
