"""`plan update` shows the changelog entries an update would add (saved with --out);
`apply update` writes a saved plan's entries, or plans NAME and writes at once."""

from __future__ import annotations

import argh

from dockerpkg.api import versioning
from dockerpkg.cli.common import WAIT_LOCK_HELP
from dockerpkg.cli.versioning import (
    CHANGELOG_TEXT,
    DEFAULT_REASON,
    PLAN_OUTPUT,
    UPDATE_KIND,
    UPDATE_OPTIONS,
    VERSION_HELP,
    Changelogs,
    _locked,
    _show,
    show_plan,
    update_request,
)
from dockerpkg.core.plan import Action
from dockerpkg.errors import DockerPkgError


class UpdatePlanCommands(Changelogs):
    """plan update and apply update, sharing CTX (global options, environment, clock)."""

    @UPDATE_KIND
    @UPDATE_OPTIONS
    @PLAN_OUTPUT
    def plan_update(
        self,
        name: str | None,
        directory: str,
        *,
        all: bool = False,  # the flag's name: argh would make one of another
        changed_bases: bool = False,
        reason: str | None = None,
        version: str | None = None,
        select: str | None = None,
        version_suffix: str | None = None,
        json_output: bool = False,
        out: str | None = None,
        detailed_exitcode: bool = False,
    ) -> None:
        """Show the changelog entries `update` would add (with the same NAME, --all or
        --changed-bases), as text or JSON."""
        request = update_request(
            "plan update",
            name,
            directory,
            all=all,
            changed_bases=changed_bases,
            reason=reason,
            version=version,
            select=select,
            version_suffix=version_suffix,
        )
        plan, _ = self.make_plan(directory, request, changed_bases=changed_bases)
        show_plan(plan, json_output=json_output, out=out, detailed_exitcode=detailed_exitcode)

    @argh.arg("target", metavar="PLAN|NAME", help="a saved update plan, or an image name")
    @argh.arg("directory", metavar="DIRECTORY", help="the image tree (with NAME)")
    @argh.arg("--reason", "-r", help=CHANGELOG_TEXT)
    @argh.arg("--version", "-v", help=VERSION_HELP)
    @argh.arg("--wait-lock", "-w", help=WAIT_LOCK_HELP)
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
