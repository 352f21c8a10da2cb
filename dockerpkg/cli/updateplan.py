"""`plan update` shows the changelog entries an update would add (saved with --out);
`apply update` writes a saved plan's entries, or plans NAME and writes at once."""

from __future__ import annotations

import argh

from dockerpkg.api import versioning
from dockerpkg.cli.common import WAIT_LOCK_HELP
from dockerpkg.cli.versioning import (
    ALL_HELP,
    BASES_HELP,
    DEFAULT_REASON,
    DIRECTORY_HELP,
    EXITCODE_HELP,
    JSON_HELP,
    NAME_HELP,
    OUT_HELP,
    REASON_HELP,
    SELECT_HELP,
    SUFFIX_HELP,
    VERSION_HELP,
    Changelogs,
    _all_request,
    _locked,
    _show,
)
from dockerpkg.core.plan import Action
from dockerpkg.errors import DockerPkgError

_REASON = "the changelog text; each line is indented by three spaces"


class UpdatePlanCommands(Changelogs):
    """plan update and apply update, sharing CTX (global options, environment, clock)."""

    @argh.arg("name", nargs="?", metavar="NAME", help=NAME_HELP)
    @argh.arg("directory", metavar="DIRECTORY", help=DIRECTORY_HELP)
    @argh.arg("--all", help=ALL_HELP)
    @argh.arg("--changed-bases", help=BASES_HELP)
    @argh.arg("--reason", "-r", help=REASON_HELP)
    @argh.arg("--version", "-v", help=VERSION_HELP)
    @argh.arg("--select", "-s", help=SELECT_HELP)
    @argh.arg("--version-suffix", metavar="SUFFIX", help=SUFFIX_HELP)
    @argh.arg("--json", "-j", dest="json_output", help=JSON_HELP)
    @argh.arg("--out", "-o", help=OUT_HELP)
    @argh.arg("--detailed-exitcode", "-d", help=EXITCODE_HELP)
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
        if changed_bases:
            self.plan_update_changed_bases(
                directory,
                reason=reason,
                version_suffix=version_suffix,
                json_output=json_output,
                out=out,
                detailed_exitcode=detailed_exitcode,
            )
            return
        reason = DEFAULT_REASON if reason is None else reason
        if all:
            self.plan_update_all(
                directory,
                reason=reason,
                select=select,
                version_suffix=version_suffix,
                version=version,
                json_output=json_output,
                out=out,
                detailed_exitcode=detailed_exitcode,
            )
            return
        if name is None:  # refused by the parser's check (cli.versioning.usage_problem)
            raise DockerPkgError.single(directory, "plan update takes NAME and DIRECTORY")
        self.plan_update_name(
            name,
            directory,
            reason=reason,
            version=version,
            json_output=json_output,
            out=out,
            detailed_exitcode=detailed_exitcode,
        )

    def plan_update_name(
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

    @argh.arg("target", metavar="PLAN|NAME", help="a saved update plan, or an image name")
    @argh.arg("directory", metavar="DIRECTORY", help="the image tree (with NAME)")
    @argh.arg("--reason", "-r", help=_REASON)
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
