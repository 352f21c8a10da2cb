"""Commands for update and prune: parse, call dockerpkg.versioning, print, choose the status.

`plan-update`/`plan-prune` only show a plan (saved with --out), `apply-update`/`apply-prune`
carry out a saved one (refused if stale), and docker-pkg's verbs `update` and `prune` plan,
print and carry out at once.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import argh

from dockerpkg import api
from dockerpkg.api import refs as refs_api
from dockerpkg.api import versioning
from dockerpkg.cli.common import (
    EXIT_CHANGES,
    EXIT_ERROR,
    WAIT_LOCK_HELP,
    Context,
    ExitStatus,
    locked,
)
from dockerpkg.core.plan import Action, Plan
from dockerpkg.core.planjson import loads
from dockerpkg.core.refsrender import skipped_lines, update_to_json, update_to_text
from dockerpkg.core.serialize import plan_to_json, plan_to_text
from dockerpkg.errors import DockerPkgError, problem_lines

if TYPE_CHECKING:
    from dockerpkg.api.versioning import ImageStore, Removal

DEFAULT_REASON = versioning.DEFAULT_REASON
_BASES_REASON = "the changelog text (default: one naming the base image and its new digest)"

_REASON = "the changelog text; each line is indented by three spaces"
_SELECT = "fnmatch glob on full labels (registry/namespace/name:tag)"
_OUT = "also save the plan as JSON to this file, for the matching apply command"
_VERSION = "NAME's new version, greater than its current one; without it, a bump"
_SUFFIX = "set -SUFFIX on every version, replacing a trailing one of the same shape"
_EXITCODE = "exit 2 when the plan has changes, 0 when it is empty"
_NIGHTLY = "keep the nightly VERSION-SUFFIX instead of VERSION (strftime codes are expanded)"


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


_REFS = (
    "also move the references in the config's refs: paths to the new versions, in the same "
    "all-or-nothing write"
)


def normalize_argv(rest: Sequence[str]) -> list[str]:
    """The spellings users type, as command names: `plan update ...` -> `plan-update ...`
    (also apply, and prune), and `update --all ...` -> `update-all ...`.

    `update --all` is a command of its own because argparse cannot take an optional NAME
    before DIRECTORY while options come between them, as docker-pkg's
    `update NAME --reason TEXT DIRECTORY` has them.
    """
    args = list(rest)
    if len(args) > 1 and args[0] in {"plan", "apply"} and args[1] in {"update", "prune", "refs"}:
        args = [f"{args[0]}-{args[1]}", *args[2:]]
    elif (
        len(args) > 1
        and args[0] == "apply"
        and (action := saved_action(args[1])) in {Action.UPDATE.value, Action.PRUNE.value, "refs"}
    ):
        # `apply PLAN.json` runs any saved plan: pick the command by the plan's action.
        args[0] = f"apply-{action}"
    for flag in ("--all", "--changed-bases"):
        if args and args[0] in {"update", "plan-update"} and flag in args[1:]:
            args.remove(flag)
            args[0] += "-" + flag[2:]
            break
    for flag in ("--resume", "--discard"):
        if args and args[0] == "update" and flag in args[1:]:
            args.remove(flag)
            args[0] += "-" + flag[2:]
    return args


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


def _nightly(ctx: Context, nightly: str | None) -> str | None:
    # docker-pkg put the suffix through strftime: `--nightly %Y%m%d` meant today.
    return ctx.now.strftime(nightly) if nightly else None


def _interrupted_update(plan: Plan, workspace: api.Workspace) -> str:
    """What an interrupted write left: none or all of the changelogs (see api.versioning)."""
    done = versioning.written_edits(plan, workspace)
    total = len(plan.edits)
    if not done:
        return "Interrupted: no changelog was changed."
    if len(done) == total:
        return f"Interrupted after writing all {total} changelog(s)."
    return f"Interrupted: {len(done)} of {total} changelog(s) were written: {', '.join(done)}"


def _report_removals(results: Sequence[Removal]) -> None:
    for result in results:
        what = f"{result.step.image}  {result.step.detail}"
        if result.skipped:
            print(f"skipped  {what}: {result.error}", file=sys.stderr)
        elif result.error is not None:
            print(f"failed   {what}: {result.error}", file=sys.stderr)
        else:
            print(f"removed  {what}", file=sys.stderr)
    print(versioning.removal_summary(results), file=sys.stderr)
    if any(r.error is not None for r in results):
        _exit(EXIT_ERROR)


class VersioningCommands:
    """The update and prune commands, sharing CTX (global options, environment, clock)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def make_update_plan(
        self, directory: str, request: versioning.UpdateRequest
    ) -> tuple[Plan, api.Workspace]:
        # Changelog edits need the dependency graph, not the rendered Dockerfiles.
        workspace = api.load_workspace(directory, self.ctx.config_path, self.ctx.env, render=False)
        _print_problems(workspace, every=self.ctx.echo)
        return versioning.update_plan(workspace, request, self.ctx.env, self.ctx.now), workspace

    def show_update(
        self, plan: Plan, *, json_output: bool, out: str | None, detailed_exitcode: bool
    ) -> None:
        _show(plan, json_output=json_output, out=out)
        if detailed_exitcode and plan.has_changes:
            _exit(EXIT_CHANGES)

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

    @argh.arg("name", metavar="NAME", help="the image to update, by its exact name")
    @argh.arg("directory", metavar="DIRECTORY", help="the image tree")
    @argh.arg("--reason", help=_REASON)
    @argh.arg("--version", "-v", help=_VERSION)
    @argh.arg("--json", dest="json_output", help="print the plan as JSON")
    @argh.arg("--out", help=_OUT)
    @argh.arg("--detailed-exitcode", help=_EXITCODE)
    def plan_update(
        self,
        name: str,
        directory: str,
        *,
        reason: str = DEFAULT_REASON,
        version: str | None = None,
        json_output: bool = False,
        out: str | None = None,
        detailed_exitcode: bool = False,
    ) -> None:
        """Show the changelog entries `update` would add, as text or JSON."""
        request = versioning.UpdateRequest(reason=reason, name=name, version=version)
        plan, _ = self.make_update_plan(directory, request)
        self.show_update(
            plan, json_output=json_output, out=out, detailed_exitcode=detailed_exitcode
        )

    @argh.arg("directory", metavar="DIRECTORY", help="the image tree")
    @argh.arg("--reason", help=_REASON)
    @argh.arg("--select", help=_SELECT)
    @argh.arg("--version-suffix", metavar="SUFFIX", help=_SUFFIX)
    @argh.arg("--version", "-v", help="refused: use --version-suffix (or update NAME)")
    @argh.arg("--json", dest="json_output", help="print the plan as JSON")
    @argh.arg("--out", help=_OUT)
    @argh.arg("--detailed-exitcode", help=_EXITCODE)
    def plan_update_all(
        self,
        directory: str,
        *,
        reason: str = DEFAULT_REASON,
        select: str | None = None,
        version_suffix: str | None = None,
        version: str | None = None,
        json_output: bool = False,
        out: str | None = None,
        detailed_exitcode: bool = False,
    ) -> None:
        """`plan update --all`: show the entries `update --all` would add."""
        request = _all_request(reason, select, version_suffix, version, directory)
        plan, _ = self.make_update_plan(directory, request)
        self.show_update(
            plan, json_output=json_output, out=out, detailed_exitcode=detailed_exitcode
        )

    @argh.arg("target", metavar="PLAN|NAME", help="a saved update plan, or an image name")
    @argh.arg("directory", metavar="DIRECTORY", help="the image tree (with NAME)")
    @argh.arg("--reason", help=_REASON)
    @argh.arg("--version", "-v", help=_VERSION)
    @argh.arg("--wait-lock", help=WAIT_LOCK_HELP)
    def apply_update(
        self,
        target: str,
        *directory: str,
        reason: str = DEFAULT_REASON,
        version: str | None = None,
        wait_lock: bool = False,
    ) -> None:
        """Write a saved update plan's entries (all or none), or plan NAME and write at once."""
        if len(directory) > 1:
            raise DockerPkgError.single(directory[1], "apply update takes NAME and DIRECTORY")
        if not directory:
            with self._saved(target, Action.UPDATE, wait_lock) as (plan, workspace):
                self.write(plan, workspace)
            return
        request = versioning.UpdateRequest(reason=reason, name=target, version=version)
        with _locked(directory[0], wait_lock):
            plan, workspace = self.make_update_plan(directory[0], request)
            _show(plan, json_output=False, out=None)
            self.write(plan, workspace)

    @argh.arg("name", metavar="NAME", help="the image to update, by its exact name")
    @argh.arg("directory", metavar="DIRECTORY", help="the image tree")
    @argh.arg("--reason", help=_REASON)
    @argh.arg("--version", "-v", help=_VERSION)
    @argh.arg("--json", dest="json_output", help="print the plan as JSON")
    @argh.arg("--wait-lock", help=WAIT_LOCK_HELP)
    @argh.arg("--refs", dest="with_refs", help=_REFS)
    def update(
        self,
        name: str,
        directory: str,
        *,
        reason: str = DEFAULT_REASON,
        version: str | None = None,
        json_output: bool = False,
        wait_lock: bool = False,
        with_refs: bool = False,
    ) -> None:
        """docker-pkg's verb: a new changelog entry for NAME and every image depending on it."""
        request = versioning.UpdateRequest(reason=reason, name=name, version=version)
        with _locked(directory, wait_lock):
            plan, workspace = self.make_update_plan(directory, request)
            self.show_and_write(plan, workspace, json_output=json_output, refs=with_refs)

    @argh.arg("directory", metavar="DIRECTORY", help="the image tree")
    @argh.arg("--reason", help=_REASON)
    @argh.arg("--select", help=_SELECT)
    @argh.arg("--version-suffix", metavar="SUFFIX", help=_SUFFIX)
    @argh.arg("--version", "-v", help="refused: use --version-suffix (or update NAME)")
    @argh.arg("--json", dest="json_output", help="print the plan as JSON")
    @argh.arg("--wait-lock", help=WAIT_LOCK_HELP)
    @argh.arg("--refs", dest="with_refs", help=_REFS)
    def update_all(
        self,
        directory: str,
        *,
        reason: str = DEFAULT_REASON,
        select: str | None = None,
        version_suffix: str | None = None,
        version: str | None = None,
        json_output: bool = False,
        wait_lock: bool = False,
        with_refs: bool = False,
    ) -> None:
        """`update --all`: a new entry for every selected image and every image depending on
        one of them (a scheduled refresh)."""
        request = _all_request(reason, select, version_suffix, version, directory)
        with _locked(directory, wait_lock):
            plan, workspace = self.make_update_plan(directory, request)
            self.show_and_write(plan, workspace, json_output=json_output, refs=with_refs)

    def make_bases_plan(
        self, directory: str, reason: str | None, version_suffix: str | None
    ) -> tuple[Plan, api.Workspace]:
        request = versioning.UpdateRequest(reason=reason, version_suffix=version_suffix)
        ctx = self.ctx
        plan, workspace = versioning.changed_bases_plan(
            directory, ctx.config_path, ctx.env, ctx.now, request
        )
        _print_problems(workspace, every=ctx.echo)
        return plan, workspace

    @argh.arg("directory", metavar="DIRECTORY", help="the image tree")
    @argh.arg("--reason", help=_BASES_REASON)
    @argh.arg("--version-suffix", metavar="SUFFIX", help=_SUFFIX)
    @argh.arg("--json", dest="json_output", help="print the plan as JSON")
    @argh.arg("--out", help=_OUT)
    @argh.arg("--detailed-exitcode", help=_EXITCODE)
    def plan_update_changed_bases(
        self,
        directory: str,
        *,
        reason: str | None = None,
        version_suffix: str | None = None,
        json_output: bool = False,
        out: str | None = None,
        detailed_exitcode: bool = False,
    ) -> None:
        """Show the entries `update --changed-bases` would add: the images built on a base
        image that moved since (asked of the registry), and what depends on them."""
        plan, _ = self.make_bases_plan(directory, reason, version_suffix)
        self.show_update(
            plan, json_output=json_output, out=out, detailed_exitcode=detailed_exitcode
        )

    @argh.arg("directory", metavar="DIRECTORY", help="the image tree")
    @argh.arg("--reason", help=_BASES_REASON)
    @argh.arg("--version-suffix", metavar="SUFFIX", help=_SUFFIX)
    @argh.arg("--json", dest="json_output", help="print the plan as JSON")
    @argh.arg("--wait-lock", help=WAIT_LOCK_HELP)
    @argh.arg("--refs", dest="with_refs", help=_REFS)
    def update_changed_bases(
        self,
        directory: str,
        *,
        reason: str | None = None,
        version_suffix: str | None = None,
        json_output: bool = False,
        wait_lock: bool = False,
        with_refs: bool = False,
    ) -> None:
        """`update --changed-bases`: a new entry for every published image whose base image
        moved since it was built, and for every image depending on one of them."""
        with _locked(directory, wait_lock):
            plan, workspace = self.make_bases_plan(directory, reason, version_suffix)
            self.show_and_write(plan, workspace, json_output=json_output, refs=with_refs)

    def recover(self, directory: str, wait_lock: bool, *, resume: bool) -> None:
        with _locked(directory, wait_lock):
            found, written = versioning.recover_update(
                directory, self.ctx.config_path, self.ctx.env, resume=resume
            )
        if found is None:
            print("No interrupted update here: nothing to do.", file=sys.stderr)
        elif resume:
            print(
                f"Finished the interrupted update ({found.who}): wrote {len(written)} more "
                "changelog(s).",
                file=sys.stderr,
            )
        else:
            print(
                f"Undid the interrupted update ({found.who}): put back {len(written)} "
                f"changelog(s), removed {len(found.staged)} staged file(s).",
                file=sys.stderr,
            )

    @argh.arg("directory", metavar="DIRECTORY", help="the image tree")
    @argh.arg("--wait-lock", help=WAIT_LOCK_HELP)
    def update_resume(self, directory: str, *, wait_lock: bool = False) -> None:
        """`update --resume`: finish an interrupted update (the changelogs it had not
        written get their entry, checked against its journal)."""
        self.recover(directory, wait_lock, resume=True)

    @argh.arg("directory", metavar="DIRECTORY", help="the image tree")
    @argh.arg("--wait-lock", help=WAIT_LOCK_HELP)
    def update_discard(self, directory: str, *, wait_lock: bool = False) -> None:
        """`update --discard`: undo an interrupted update (the changelogs it wrote put back,
        its staged files removed)."""
        self.recover(directory, wait_lock, resume=False)

    def make_prune_plan(
        self, directory: str, select: str | None, nightly: str | None
    ) -> tuple[versioning.PruneRun, ImageStore]:
        suffix = _nightly(self.ctx, nightly)
        workspace = api.load_workspace(
            directory,
            self.ctx.config_path,
            self.ctx.env,
            f"-{suffix}" if suffix else "",
            render=False,
        )
        _print_problems(workspace, every=self.ctx.echo)
        client = versioning.connect(self.ctx.env)
        try:
            run = versioning.prune_plan(workspace, client, select=select, nightly=suffix)
        except BaseException:
            client.close()
            raise
        return run, client

    @argh.arg("directory", help="the image tree")
    @argh.arg("--select", help=_SELECT)
    @argh.arg("--nightly", metavar="SUFFIX", help=_NIGHTLY)
    @argh.arg("--json", dest="json_output", help="print the plan as JSON")
    @argh.arg("--out", help=_OUT)
    @argh.arg("--detailed-exitcode", help=_EXITCODE)
    def plan_prune(
        self,
        directory: str,
        *,
        select: str | None = None,
        nightly: str | None = None,
        json_output: bool = False,
        out: str | None = None,
        detailed_exitcode: bool = False,
    ) -> None:
        """Show which old local images `prune` would remove, and which it keeps and why."""
        run, client = self.make_prune_plan(directory, select, nightly)
        client.close()
        _show(run.plan, json_output=json_output, out=out)
        if detailed_exitcode and run.plan.has_changes:
            _exit(EXIT_CHANGES)

    @argh.arg("target", metavar="PLAN|DIRECTORY", help="a saved prune plan, or the image tree")
    @argh.arg("--select", help=_SELECT)
    @argh.arg("--nightly", metavar="SUFFIX", help=_NIGHTLY)
    @argh.arg("--wait-lock", help=WAIT_LOCK_HELP)
    def apply_prune(
        self,
        target: str,
        *,
        select: str | None = None,
        nightly: str | None = None,
        wait_lock: bool = False,
    ) -> None:
        """Remove the images of a saved prune plan (if the daemon still looks as planned), or
        plan DIRECTORY and remove at once."""
        if not os.path.isfile(target):
            self.prune(target, select=select, nightly=nightly, wait_lock=wait_lock)
            return
        with self._saved(target, Action.PRUNE, wait_lock) as (saved, workspace):
            results = versioning.apply_saved_prune(saved, workspace, self.ctx.env, target)
        _report_removals(results)

    @argh.arg("directory", help="the image tree")
    @argh.arg("--select", help=_SELECT)
    @argh.arg("--nightly", metavar="SUFFIX", help=_NIGHTLY)
    @argh.arg("--json", dest="json_output", help="print the plan as JSON")
    @argh.arg("--wait-lock", help=WAIT_LOCK_HELP)
    def prune(
        self,
        directory: str,
        *,
        select: str | None = None,
        nightly: str | None = None,
        json_output: bool = False,
        wait_lock: bool = False,
    ) -> None:
        """docker-pkg's verb: remove the old local images of the selected images."""
        with _locked(directory, wait_lock):
            run, client = self.make_prune_plan(directory, select, nightly)
            try:
                _show(run.plan, json_output=json_output, out=None)
                results = versioning.prune(client, run)
            finally:
                client.close()
        _report_removals(results)


def commands(ctx: Context) -> list[Callable[..., Any]]:
    """The commands of VersioningCommands, sharing CTX (global options, environment, clock)."""
    group = VersioningCommands(ctx)
    return [
        group.plan_update,
        group.plan_update_all,
        group.plan_update_changed_bases,
        group.apply_update,
        group.update,
        group.update_all,
        group.update_changed_bases,
        group.update_resume,
        group.update_discard,
        group.plan_prune,
        group.apply_prune,
        group.prune,
    ]
