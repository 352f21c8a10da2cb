"""The prune verb: `prune` removes the old local images of the selected images, `plan prune`
shows which (saved with --out), `apply prune` removes those of a saved plan."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import argh

from dockerpkg import api
from dockerpkg.api import versioning
from dockerpkg.cli.common import EXIT_ERROR, WAIT_LOCK_HELP, Context
from dockerpkg.cli.parsing import arg, declared
from dockerpkg.cli.versioning import (
    DIRECTORY_HELP,
    JSON_HELP,
    PLAN_OUTPUT,
    SavedPlans,
    _exit,
    _locked,
    _print_problems,
    _show,
    show_plan,
)
from dockerpkg.core.plan import Action

if TYPE_CHECKING:
    from dockerpkg.api.versioning import ImageStore, Removal

_SELECT = "fnmatch glob on full labels (registry/namespace/name:tag) (default: every image)"
_NIGHTLY = "keep the nightly VERSION-SUFFIX instead of VERSION (strftime codes are expanded)"
# Which images the three prune commands look at.
_selection = declared(
    arg("--select", "-s", help=_SELECT),
    arg("--nightly", "-n", metavar="SUFFIX", help=_NIGHTLY),
)


def _nightly(ctx: Context, nightly: str | None) -> str | None:
    # docker-pkg put the suffix through strftime: `--nightly %Y%m%d` meant today.
    return ctx.now.strftime(nightly) if nightly else None


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


class PruneCommands(SavedPlans):
    """prune, plan prune and apply prune, sharing CTX (global options, environment, clock)."""

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

    @argh.arg("directory", metavar="DIRECTORY", help=DIRECTORY_HELP)
    @_selection
    @argh.arg("--json", "-j", dest="json_output", help=JSON_HELP)
    @PLAN_OUTPUT
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
        show_plan(run.plan, json_output=json_output, out=out, detailed_exitcode=detailed_exitcode)

    @argh.arg("target", metavar="PLAN|DIRECTORY", help="a saved prune plan, or the image tree")
    @_selection
    @argh.arg("--wait-lock", "-w", help=WAIT_LOCK_HELP)
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

    @argh.arg("directory", metavar="DIRECTORY", help=DIRECTORY_HELP)
    @_selection
    @argh.arg("--json", "-j", dest="json_output", help=JSON_HELP)
    @argh.arg("--wait-lock", "-w", help=WAIT_LOCK_HELP)
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
