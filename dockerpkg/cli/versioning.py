"""What the update and prune commands share: how a changelog update is planned, shown and
written, the saved plans `apply` reads, the help texts.

The commands themselves: cli/update.py (`update`), cli/updateplan.py (`plan update`,
`apply update`), cli/prune.py (`prune`, `plan prune`, `apply prune`). `plan ...` only shows
a plan (saved with --out), `apply ...` carries out a saved one (refused if stale), and
docker-pkg's verbs `update` and `prune` plan, print and carry out at once.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import NoReturn

from dockerpkg import api
from dockerpkg.api import refs as refs_api
from dockerpkg.api import versioning
from dockerpkg.cli.common import (
    EXIT_CHANGES,
    Context,
    ExitStatus,
    locked,
)
from dockerpkg.cli.parsing import arg, declared
from dockerpkg.core.plan import Action, Plan
from dockerpkg.core.planjson import loads
from dockerpkg.core.refsrender import skipped_lines, update_to_json, update_to_text
from dockerpkg.core.serialize import plan_to_json, plan_to_text
from dockerpkg.errors import DockerPkgError, problem_lines

DEFAULT_REASON = versioning.DEFAULT_REASON

CHANGELOG_TEXT = "the changelog text; each line is indented by three spaces"
REASON_HELP = (
    f"{CHANGELOG_TEXT} (default: {DEFAULT_REASON}; with --changed-bases, one naming the base image "
    "and its new digest)"
)
NAME_HELP = "the image to update, by its exact name (left out with --all, --changed-bases, ...)"
DIRECTORY_HELP = "the image tree"
SELECT_HELP = "with --all: fnmatch glob on full labels (registry/namespace/name:tag)"
OUT_HELP = "also save the plan as JSON to this file, for the matching apply command"
VERSION_HELP = "NAME's new version, greater than its current one (default: a bump)"
SUFFIX_HELP = (
    "with --all or --changed-bases: set -SUFFIX on every version, replacing a trailing one of "
    "the same shape"
)
EXITCODE_HELP = "exit 2 when the plan has changes, 0 when it is empty"
JSON_HELP = "print the plan as JSON"
ALL_HELP = "every image --select matches (default: all) and those depending on them"
BASES_HELP = (
    "the published images whose base image moved since they were built (asked of the "
    "registry), and those depending on them"
)
# The arguments update and plan update share, in two runs: the kind of update, then the
# options of planning it.
UPDATE_KIND = declared(
    arg("name", nargs="?", metavar="NAME", help=NAME_HELP),
    arg("directory", metavar="DIRECTORY", help=DIRECTORY_HELP),
    arg("--all", help=ALL_HELP),
    arg("--changed-bases", help=BASES_HELP),
)
UPDATE_OPTIONS = declared(
    arg("--reason", "-r", help=REASON_HELP),
    arg("--version", "-v", help=VERSION_HELP),
    arg("--select", "-s", help=SELECT_HELP),
    arg("--version-suffix", metavar="SUFFIX", help=SUFFIX_HELP),
    arg("--json", "-j", dest="json_output", help=JSON_HELP),
)
# What plan update and plan prune do with the plan they show.
PLAN_OUTPUT = declared(
    arg("--out", "-o", help=OUT_HELP),
    arg("--detailed-exitcode", "-d", help=EXITCODE_HELP),
)
_MODES = {"all": "--all", "changed_bases": "--changed-bases"}
_RECOVERY = {"resume": "--resume", "discard": "--discard"}
# The options each kind of update takes (None: update NAME); the rest are usage errors.
_TAKEN_WITH = {
    "select": ("--all",),
    "version_suffix": ("--all", "--changed-bases"),
    "version": (None, "--all"),  # with --all, refused with a hint (_all_request)
    "reason": (None, "--all", "--changed-bases"),
    "json_output": (None, "--all", "--changed-bases"),
    "with_refs": (None, "--all", "--changed-bases"),
}
_FLAGS = {
    "select": "--select",
    "version_suffix": "--version-suffix",
    "version": "--version",
    "reason": "--reason",
    "json_output": "--json",
    "with_refs": "--refs",
}


def usage_problem(found: argparse.Namespace) -> str | None:
    """What is wrong with the arguments given together to update or plan update, as a usage
    error: one kind of update (NAME, --all, --changed-bases, --resume or --discard) and
    only the options it takes."""
    modes = {**_MODES, **_RECOVERY}
    given = [flag for dest, flag in modes.items() if getattr(found, dest, False)]
    if len(given) > 1:
        return f"{' and '.join(given)} exclude each other"
    mode = given[0] if given else None
    if mode is not None and found.name is not None:
        return f"{mode} takes DIRECTORY alone, not NAME ({found.name})"
    if mode is None and found.name is None:
        return "NAME and DIRECTORY are required (or --all, --changed-bases, ..., and DIRECTORY)"
    for dest, modes_taking in _TAKEN_WITH.items():
        value = getattr(found, dest, None)
        if value not in (None, False) and mode not in modes_taking:
            return f"{_FLAGS[dest]} does not go with {mode or 'NAME'}"
    return None


def _exit(code: int) -> NoReturn:
    raise ExitStatus(code)


def _locked(directory: str, wait: bool) -> AbstractContextManager[None]:
    return locked(directory, wait=wait)


def _lock(wait: bool) -> api.TreeLock:
    return functools.partial(locked, wait=wait)


def _print_problems(workspace: api.Workspace, *, every: bool) -> None:
    for line in problem_lines(workspace.warnings, workspace.directory, every=every):
        print(line, file=sys.stderr)


def _show(plan: Plan, *, json_output: bool, out: str | None) -> None:
    if out:
        Path(out).write_text(plan_to_json(plan), encoding="utf-8")
    sys.stdout.write(plan_to_json(plan) if json_output else plan_to_text(plan))
    sys.stdout.flush()


def show_plan(plan: Plan, *, json_output: bool, out: str | None, detailed_exitcode: bool) -> None:
    """What `plan update` and `plan prune` print (and save to OUT), and how they exit."""
    _show(plan, json_output=json_output, out=out)
    if detailed_exitcode and plan.has_changes:
        _exit(EXIT_CHANGES)


def saved_action(path: str) -> str | None:
    """The action of a saved plan file, or None when PATH is not one (errors come later)."""
    if not path.endswith(".json") or not os.path.isfile(path):
        return None
    try:
        # Within the limits of a plan file (a huge or deeply nested one is refused later).
        data = loads(api.read_plan_text(path), path)
    except DockerPkgError:
        return None
    action = data.get("action") if isinstance(data, dict) else None
    return action if isinstance(action, str) else None


def update_request(
    command: str,
    name: str | None,
    directory: str,
    *,
    all: bool,  # the flag's name, as the commands take it
    changed_bases: bool,
    reason: str | None,
    version: str | None,
    select: str | None,
    version_suffix: str | None,
) -> versioning.UpdateRequest:
    """What COMMAND (update or plan update) was asked: NAME, --all or --changed-bases (a
    reason of None: --changed-bases' own, naming the base)."""
    if changed_bases:
        return versioning.UpdateRequest(reason=reason, version_suffix=version_suffix)
    reason = DEFAULT_REASON if reason is None else reason
    if all:
        return _all_request(reason, select, version_suffix, version, directory)
    if name is None:  # refused by the parser's check (usage_problem)
        raise DockerPkgError.single(directory, f"{command} takes NAME and DIRECTORY")
    return versioning.UpdateRequest(reason=reason, name=name, version=version)


def _all_request(
    reason: str,
    select: str | None,
    version_suffix: str | None,
    version: str | None,
    directory: str,
) -> versioning.UpdateRequest:
    # --version is declared only to refuse it: argparse would otherwise take it as an
    # abbreviation of --version-suffix.
    if version is not None:
        raise DockerPkgError.single(
            directory, "--version sets one image's version; with --all, use --version-suffix"
        )
    return versioning.UpdateRequest(reason=reason, select=select, version_suffix=version_suffix)


def _interrupted_update(plan: Plan, workspace: api.Workspace) -> str:
    """What an interrupted write left: none or all of the changelogs (see api.versioning)."""
    done = versioning.written_edits(plan, workspace)
    total = len(plan.edits)
    if not done:
        return "Interrupted: no changelog was changed."
    if len(done) == total:
        return f"Interrupted after writing all {total} changelog(s)."
    return f"Interrupted: {len(done)} of {total} changelog(s) were written: {', '.join(done)}"


class SavedPlans:
    """Commands that carry out a saved plan, sharing CTX (global options, environment,
    clock)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    @contextmanager
    def _saved(
        self, target: str, action: Action, wait_lock: bool
    ) -> Iterator[tuple[Plan, api.Workspace]]:
        """The ACTION plan saved in TARGET and its tree, under the tree's lock."""
        ctx = self.ctx
        lock = _lock(wait_lock)
        with api.opened_saved_plan(target, ctx.config_path, ctx.env, action, lock) as opened:
            _print_problems(opened[1], every=ctx.echo)
            yield opened


class Changelogs(SavedPlans):
    """Planning, showing and writing changelog updates, for the commands of update and plan
    update."""

    def make_update_plan(
        self, directory: str, request: versioning.UpdateRequest
    ) -> tuple[Plan, api.Workspace]:
        # Changelog edits need the dependency graph, not the rendered Dockerfiles.
        workspace = api.load_workspace(directory, self.ctx.config_path, self.ctx.env, render=False)
        _print_problems(workspace, every=self.ctx.echo)
        return versioning.update_plan(workspace, request, self.ctx.env, self.ctx.now), workspace

    def write(self, plan: Plan, workspace: api.Workspace) -> None:
        if not plan.edits:
            return
        try:
            written = versioning.write_update(plan, workspace)
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: say what the files hold now
            print(_interrupted_update(plan, workspace), file=sys.stderr)
            raise
        print(f"Wrote {len(written)} changelog(s).", file=sys.stderr)

    def show_and_write(
        self, plan: Plan, workspace: api.Workspace, *, json_output: bool, refs: bool
    ) -> None:
        """Print PLAN, then write it; with REFS, one plan with the edits that move the users
        of the new versions (see dockerpkg.api.refs), printed whole before anything is
        written, then written in one transaction."""
        if not (refs and plan.edits):
            _show(plan, json_output=json_output, out=None)
            self.write(plan, workspace)
            return
        combined = refs_api.plan_update_with_refs(plan, workspace, self.ctx.env)
        sys.stdout.write(update_to_json(combined) if json_output else update_to_text(combined))
        sys.stdout.flush()
        for line in skipped_lines(combined.refs):
            print(line, file=sys.stderr)
        written = refs_api.write_update_with_refs(combined, workspace)
        moved = combined.refs.edits
        print(
            f"Wrote {len(written)} changelog(s) and moved {len(moved)} reference(s) "
            f"in {len({use.path for use in moved})} file(s).",
            file=sys.stderr,
        )

    def make_plan(
        self, directory: str, request: versioning.UpdateRequest, *, changed_bases: bool
    ) -> tuple[Plan, api.Workspace]:
        """The plan of REQUEST (update NAME, --all, or with CHANGED_BASES --changed-bases)."""
        if changed_bases:
            return self.make_bases_plan(directory, request)
        return self.make_update_plan(directory, request)

    def make_bases_plan(
        self, directory: str, request: versioning.UpdateRequest
    ) -> tuple[Plan, api.Workspace]:
        ctx = self.ctx
        plan, workspace, limited = versioning.changed_bases_plan(
            directory, ctx.config_path, ctx.env, ctx.now, request
        )
        _print_problems(workspace, every=ctx.echo)
        for line in limited:
            print(line, file=sys.stderr)
        return plan, workspace
