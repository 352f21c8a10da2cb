"""Library entry points for `update` and `prune`: read inputs, call the pure core, and carry
out a plan. The CLI (dockerpkg.cli.versioning) only parses, calls these and prints.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import attrs

from dockerpkg.api.limits import limit_warnings
from dockerpkg.api.saved import named_plan
from dockerpkg.api.workspace import (
    Workspace,
    interrupted_update,
    left_behind,
    observe_tree,
    publish_mode,
)
from dockerpkg.core.bases import check_bases
from dockerpkg.core.config import Config
from dockerpkg.core.editmatch import update_edit_problem
from dockerpkg.core.plan import Action, BuildOptions, Edit, Plan
from dockerpkg.core.planmatch import prune_differences
from dockerpkg.core.prune import plan_prune
from dockerpkg.core.tree import Image
from dockerpkg.core.update import plan_update, plan_update_all, plan_update_changed_bases
from dockerpkg.effects import changelogs
from dockerpkg.effects.author import changelog_date, resolve_author
from dockerpkg.errors import DockerPkgError, error

if TYPE_CHECKING:
    from dockerpkg.effects.imagestore import ImageStore as ImageStore  # noqa: PLC0414 (for the CLI)
    from dockerpkg.effects.prune import LocalState
    from dockerpkg.effects.prune import Removal as Removal  # noqa: PLC0414 (for the CLI)


DEFAULT_REASON = "Security update"


@attrs.frozen
class UpdateRequest:
    """What `update` was asked: one image (NAME, maybe VERSION), or --all (SELECT, SUFFIX)."""

    reason: str | None = DEFAULT_REASON  # None: --changed-bases' own, naming the base
    name: str | None = None
    version: str | None = None
    select: str | None = None
    version_suffix: str | None = None


def update_plan(
    workspace: Workspace, request: UpdateRequest, env: Mapping[str, str], now: datetime.datetime
) -> Plan:
    """The changelog edits for REQUEST, signed by the author the environment names."""
    author = resolve_author(env, workspace.config, cwd=workspace.directory)
    date = changelog_date(now)
    reason = request.reason or DEFAULT_REASON
    if request.name is not None:
        return plan_update(
            workspace.tree,
            workspace.config,
            name=request.name,
            reason=reason,
            version=request.version,
            author=author,
            date=date,
            directory=workspace.directory,
            digest=workspace.digest,
        )
    return plan_update_all(
        workspace.tree,
        workspace.config,
        select=request.select,
        reason=reason,
        version_suffix=request.version_suffix,
        author=author,
        date=date,
        directory=workspace.directory,
        digest=workspace.digest,
    )


def changed_bases_plan(
    directory: str,
    config_path: str | None,
    env: Mapping[str, str],
    now: datetime.datetime,
    request: UpdateRequest,
) -> tuple[Plan, Workspace, list[str]]:
    """`update --changed-bases`: the registry is asked (never the daemon) for the bases
    recorded on every published image of the tree and for the base images' digests now;
    the entries go to the images whose base moved and to what depends on them. Last, a
    warning for each registry that limited the asking (for stderr: never in the plan)."""

    def options(config: Config) -> BuildOptions:
        return BuildOptions(publish=publish_mode(config, None))

    workspace, observed, _, _, gates = observe_tree(
        directory, config_path, env, options, render=False, definitions=True, daemon=False
    )
    tree = workspace.tree
    published = [name for name in tree.order if tree.images[name].label in observed.published]
    check = check_bases(tree, published, observed.bases, observed.base_digests)
    plan = plan_update_changed_bases(
        tree,
        workspace.config,
        check=check,
        reason=request.reason,
        version_suffix=request.version_suffix,
        author=resolve_author(env, workspace.config, cwd=workspace.directory),
        date=changelog_date(now),
        directory=workspace.directory,
        digest=workspace.digest,
    )
    if observed.problems:
        plan = attrs.evolve(plan, notes=plan.notes + observed.problems)
    return plan, workspace, limit_warnings(gates)


def write_update(
    plan: Plan, workspace: Workspace, *, write: changelogs.Writer = changelogs.write_new_file
) -> tuple[str, ...]:
    """Write every edit of an update plan made from WORKSPACE, or none; returns their paths."""
    check_update(plan, workspace)
    return changelogs.apply_edits(
        workspace.directory, plan.edits, originals(workspace), write=write
    )


def check_update(plan: Plan, workspace: Workspace) -> None:
    """PLAN is an update plan made from WORKSPACE as it is now, over nothing left half-done."""
    if plan.action is not Action.UPDATE:
        raise DockerPkgError.single(
            workspace.directory,
            f"this is {named_plan(plan.action)}, not {named_plan(Action.UPDATE)}",
        )
    if plan.digest != workspace.digest:
        raise _stale(workspace.directory)
    if workspace.interrupted is not None:
        raise left_behind(workspace.interrupted)
    # The plan is a claim: each edit must be an entry update would put in front of the
    # changelog of the image it names (see dockerpkg.core.editmatch).
    images = workspace.tree.images
    problems = [
        error(edit.path, f"not a plan dockerpkg made: {wrong}", 1)
        for edit in plan.edits
        if (wrong := _edit_problem(edit, images.get(edit.image))) is not None
    ]
    if problems:
        raise DockerPkgError(problems)


def _edit_problem(edit: Edit, image: Image | None) -> str | None:
    if image is None:
        return update_edit_problem(edit, None, None)
    source = image.spec.source
    return update_edit_problem(edit, source.changelog, source.file("changelog"))


def recover_update(
    directory: str, config_path: str | None, env: Mapping[str, str], *, resume: bool
) -> tuple[changelogs.Interrupted | None, tuple[str, ...]]:
    """Finish (RESUME) or undo what an interrupted update left in DIRECTORY: what it left
    (None: nothing), and the changelogs written."""
    found = interrupted_update(directory, config_path, env)
    if found is None:
        return None, ()
    return found, changelogs.recover(directory, found, resume=resume)


def written_edits(plan: Plan, workspace: Workspace) -> tuple[str, ...]:
    """The changelogs of PLAN that hold their new entry now (after an interrupted write)."""
    return changelogs.edited(workspace.directory, plan.edits, originals(workspace))


def originals(workspace: Workspace) -> dict[str, str]:
    return {source.file("changelog"): source.changelog for source in workspace.snapshot.images}


def _stale(where: str) -> DockerPkgError:
    return DockerPkgError.single(
        where,
        "stale plan: the tree or the config changed since the plan was made; make a new plan",
    )


def nightly_of(plan: Plan) -> str | None:
    """The --nightly SUFFIX a prune plan was made with."""
    return plan.options.suffix.removeprefix("-") or None


@attrs.frozen
class PruneRun:
    """A prune plan and the observation it was made from (needed to carry it out)."""

    plan: Plan
    state: LocalState


def connect(env: Mapping[str, str]) -> ImageStore:
    from dockerpkg.effects import imagestore

    try:
        return imagestore.connect(env)
    except imagestore.ImageStoreError as exc:
        raise DockerPkgError.single("docker", str(exc)) from None


def prune_plan(
    workspace: Workspace,
    client: ImageStore,
    *,
    select: str | None,
    nightly: str | None,
) -> PruneRun:
    """Observe the daemon once and plan which old images go."""
    from dockerpkg.effects.imagestore import ImageStoreError
    from dockerpkg.effects.prune import observe_local

    if workspace.interrupted is not None:
        # Which images are current is what the interrupted update is changing.
        raise left_behind(workspace.interrupted)
    try:
        state = observe_local(client)
    except ImageStoreError as exc:
        raise DockerPkgError.single("docker", str(exc)) from None
    plan = plan_prune(
        workspace.tree,
        workspace.config,
        state.images,
        state.in_use,
        select=select,
        nightly_suffix=nightly,
        directory=workspace.directory,
        digest=workspace.digest,
    )
    return PruneRun(plan, state)


def check_saved_prune(saved: Plan, fresh: Plan, where: str) -> None:
    """A saved prune plan is carried out only if planning now gives the same steps (and
    what is carried out is the plan made now, never the file's)."""
    differences = prune_differences(saved, fresh)
    if differences:
        head = error(
            where,
            "stale plan: the daemon's images or containers changed since the plan was made "
            "(or the plan was edited); nothing was removed: make a new plan",
        )
        raise DockerPkgError(
            [head, *(error(where, f"{what}: {text}") for what, text in differences)]
        )


def prune(client: ImageStore, run: PruneRun) -> tuple[Removal, ...]:
    """Remove what the plan says, with the observation it was made from."""
    from dockerpkg.effects.prune import remove_images

    return remove_images(client, run.plan, run.state.by_id())


def apply_saved_prune(
    plan: Plan, workspace: Workspace, env: Mapping[str, str], where: str
) -> tuple[Removal, ...]:
    """Carry out the saved prune PLAN (from the file WHERE) of WORKSPACE: the daemon is
    observed again and planning now must give the same steps, else nothing is removed."""
    client = connect(env)
    try:
        fresh = prune_plan(workspace, client, select=plan.options.select, nightly=nightly_of(plan))
        check_saved_prune(plan, fresh.plan, where)
        return prune(client, fresh)
    finally:
        client.close()


def removal_summary(results: Sequence[Removal]) -> str:
    """The last line of a prune: how many images were removed, failed, skipped."""
    from dockerpkg.effects.prune import summary

    return summary(results)
