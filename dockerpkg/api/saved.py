"""Plans saved with --out: read them back, and the tree they were made from, refused when
anything changed since."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager

import attrs

from dockerpkg.api.workspace import Workspace, load_workspace, with_test_files
from dockerpkg.core.builders import BuilderSet
from dockerpkg.core.plan import Action, Plan
from dockerpkg.core.planjson import loads
from dockerpkg.core.planmatch import build_differences, claimed_observed, suffix_problem
from dockerpkg.core.planner import plan_build
from dockerpkg.core.secrets import SecretSource, merged
from dockerpkg.core.serialize import plan_from_json
from dockerpkg.core.tree import render_images
from dockerpkg.effects.planfiles import read_plan_text
from dockerpkg.effects.treelock import tree_lock
from dockerpkg.errors import DockerPkgError, Problem, error

__all__ = [
    "TreeLock",
    "derived_build_plan",
    "load_saved_plan",
    "opened_saved_plan",
    "read_plan_text",
    "read_saved_plan",
    "saved_plan_workspace",
    "tree_lock",
]

# What holds a tree's lock while a saved plan of it is checked and carried out (the
# caller's: whether it waits, and what it says meanwhile, are the caller's to choose).
TreeLock = Callable[[str], AbstractContextManager[object]]


def load_saved_plan(
    path: str, config_path: str | None, env: Mapping[str, str], action: Action | None = None
) -> tuple[Plan, Workspace]:
    """A saved plan and its tree, refused when it is not an ACTION plan (if given) or when
    anything it was made from has changed."""
    plan = _plan_to_apply(path)
    return plan, saved_plan_workspace(plan, path, config_path, env, action)


@contextlib.contextmanager
def opened_saved_plan(
    path: str,
    config_path: str | None,
    env: Mapping[str, str],
    action: Action,
    lock: TreeLock,
) -> Iterator[tuple[Plan, Workspace]]:
    """The ACTION plan saved in PATH and its tree, held under LOCK (of the plan's tree) for
    as long as the caller carries it out; refused as load_saved_plan refuses."""
    plan = _plan_to_apply(path)
    with lock(plan.directory):
        yield plan, saved_plan_workspace(plan, path, config_path, env, action)


def read_saved_plan(path: str) -> Plan:
    """The plan saved in PATH, not yet checked against its tree (see saved_plan_workspace)."""
    return plan_from_json(read_plan_text(path), path)


def _plan_to_apply(path: str) -> Plan:
    """The plan saved in PATH, refused when it is `update --refs --json`'s: its reference
    edits (`refs`) are no part of a saved plan, and writing only its changelogs would
    silently leave the references behind."""
    text = read_plan_text(path)
    plan = plan_from_json(text, path)
    data = loads(text, path)
    if plan.action is Action.UPDATE and isinstance(data, dict) and "refs" in data:
        raise DockerPkgError.single(
            path,
            "this is an `update --refs` plan, printed for review: apply writes changelogs "
            "only and would leave its reference edits behind; to write both, run "
            "`dockerpkg update ... --refs` (nothing was written)",
        )
    return plan


def named_plan(action: Action) -> str:
    """ "a build plan", "an update plan": ACTION's plan as messages name it."""
    article = "an" if action.value[0] in "aeiou" else "a"
    return f"{article} {action.value} plan"


def saved_plan_workspace(
    plan: Plan,
    path: str,
    config_path: str | None,
    env: Mapping[str, str],
    action: Action | None = None,
) -> Workspace:
    """The tree PLAN (saved in PATH) was made from, read now; refused if it is not an ACTION
    plan (if given) or anything changed.

    Separate from read_saved_plan so a caller can lock the plan's tree in between.
    """
    if action is not None and plan.action is not action:
        raise DockerPkgError.single(
            path, f"this is {named_plan(plan.action)}, not {named_plan(action)}"
        )
    wrong_suffix = suffix_problem(plan.options.suffix)
    if plan.action is Action.BUILD and wrong_suffix is not None:
        # (A prune plan's suffix is --nightly's, any text: it only says which tag stays.)
        raise DockerPkgError.single(path, f"not a plan dockerpkg made: {wrong_suffix}")
    workspace = load_workspace(plan.directory, config_path, env, plan.options.suffix, render=False)
    if workspace.digest != plan.digest:
        stale = error(
            path,
            f"stale plan: the tree in {plan.directory} or the config changed since the plan "
            "was made; make a new plan",
        )
        raise DockerPkgError([stale, *_changed_changelogs(plan, workspace)])
    return workspace


def _changed_changelogs(plan: Plan, workspace: Workspace) -> list[Problem]:
    """The changelogs an update plan would edit whose newest version is no longer the one the
    plan was made from (someone else updated them meanwhile)."""
    versions = {
        image.spec.source.file("changelog"): image.spec.version
        for image in workspace.tree.images.values()
    }
    problems = []
    for edit in plan.edits:
        now = versions.get(edit.path)
        if now is None:
            problems.append(error(edit.path, "no longer the changelog of an image of the tree"))
        elif now != edit.old_version:
            message = f"changed since the plan was made: version {now}, not {edit.old_version}"
            problems.append(error(edit.path, message, 1))
    return problems


def derived_build_plan(
    saved: Plan,
    workspace: Workspace,
    where: str,
    secrets: tuple[SecretSource, ...] = (),
    builders: BuilderSet | None = None,
) -> Plan:
    """The build plan of WORKSPACE for the state the SAVED plan (from the file WHERE) claims,
    made with the config's build secrets and SSH agents and SECRETS (this run's --secret and
    --ssh) and BUILDERS (this run's --builders; None: the config's); refused, naming every
    difference, unless SAVED is that plan. What `apply PLAN.json` carries out is this plan,
    never the file's (see dockerpkg.core.planmatch)."""
    chosen = workspace.builders if builders is None else builders
    # `plan` renders every image, `build` what it builds: the images the saved plan shows
    # rendered are rendered here too (and must then agree).
    # A platform image (`NAME:SUFFIX`) shown rendered is rendered as its image NAME.
    shown = [
        name
        for i in saved.images
        if i.dockerfile is not None and (name := i.name.partition(":")[0]) in workspace.tree.images
    ]
    try:
        tree = render_images(workspace.tree, workspace.config, shown)
        derived = plan_build(
            tree,
            workspace.config,
            # Files outside the folders are looked at again, as the folders were read again.
            with_test_files(claimed_observed(saved, tree), workspace),
            directory=workspace.directory,
            digest=workspace.digest,
            options=saved.options,
            builders=chosen,
            source=workspace.source,
            secrets=merged(workspace.secrets, secrets),
        )
    except DockerPkgError as exc:
        head = error(where, "the tree and the config do not give this plan: nothing was done")
        raise DockerPkgError([head, *exc.problems]) from None
    # --builders replaces the plan's builders: only the config's are compared.
    compared = derived if builders is None else attrs.evolve(derived, builders=saved.builders)
    differences = build_differences(saved, compared)
    if differences:
        head = error(
            where,
            f"not the plan the tree and the config give ({len(differences)} difference(s)); "
            "nothing was done: make the plan again with `dockerpkg plan --out`",
        )
        raise DockerPkgError(
            [head, *(error(where, f"{what}: {text}") for what, text in differences)]
        )
    return derived
