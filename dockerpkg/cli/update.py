"""The update verb: `update NAME DIRECTORY` (docker-pkg's), `update --all`, `update
--changed-bases`, and `update --resume`/`--discard` after an interrupted update. Each plans,
prints and writes at once; `plan update` (cli/updateplan.py) only shows."""

from __future__ import annotations

import sys

import argh

from dockerpkg.api import versioning
from dockerpkg.cli.common import WAIT_LOCK_HELP
from dockerpkg.cli.versioning import (
    ALL_HELP,
    BASES_HELP,
    DEFAULT_REASON,
    DIRECTORY_HELP,
    JSON_HELP,
    NAME_HELP,
    REASON_HELP,
    SELECT_HELP,
    SUFFIX_HELP,
    VERSION_HELP,
    Changelogs,
    _all_request,
    _locked,
)
from dockerpkg.errors import DockerPkgError

_REFS = (
    "also move the references in the config's refs: paths to the new versions, in the same "
    "all-or-nothing write"
)
_RESUME_HELP = "finish an interrupted update: the changelogs it had not written get their entry"
_DISCARD_HELP = "undo an interrupted update: its changelogs put back, its staged files removed"


class UpdateCommands(Changelogs):
    """The update verb in its five kinds, sharing CTX (global options, environment, clock)."""

    @argh.arg("name", nargs="?", metavar="NAME", help=NAME_HELP)
    @argh.arg("directory", metavar="DIRECTORY", help=DIRECTORY_HELP)
    @argh.arg("--all", help=ALL_HELP)
    @argh.arg("--changed-bases", help=BASES_HELP)
    @argh.arg("--resume", help=_RESUME_HELP)
    @argh.arg("--discard", help=_DISCARD_HELP)
    @argh.arg("--reason", "-r", help=REASON_HELP)
    @argh.arg("--version", "-v", help=VERSION_HELP)
    @argh.arg("--select", "-s", help=SELECT_HELP)
    @argh.arg("--version-suffix", metavar="SUFFIX", help=SUFFIX_HELP)
    @argh.arg("--json", "-j", dest="json_output", help=JSON_HELP)
    @argh.arg("--wait-lock", "-w", help=WAIT_LOCK_HELP)
    @argh.arg("--refs", dest="with_refs", help=_REFS)
    def update(
        self,
        name: str | None,
        directory: str,
        *,
        all: bool = False,  # the flag's name: argh would make one of another
        changed_bases: bool = False,
        resume: bool = False,
        discard: bool = False,
        reason: str | None = None,
        version: str | None = None,
        select: str | None = None,
        version_suffix: str | None = None,
        json_output: bool = False,
        wait_lock: bool = False,
        with_refs: bool = False,
    ) -> None:
        """docker-pkg's verb: a new changelog entry for NAME and every image depending on it
        (with --all, every selected image; with --changed-bases, those on a moved base);
        --resume/--discard end an interrupted update."""
        if resume or discard:
            self.recover(directory, wait_lock, resume=resume)
            return
        if changed_bases:
            self.update_changed_bases(
                directory,
                reason=reason,
                version_suffix=version_suffix,
                json_output=json_output,
                wait_lock=wait_lock,
                with_refs=with_refs,
            )
            return
        given = {"json_output": json_output, "wait_lock": wait_lock, "with_refs": with_refs}
        reason = DEFAULT_REASON if reason is None else reason
        if all:
            self.update_all(
                directory,
                reason=reason,
                select=select,
                version_suffix=version_suffix,
                version=version,
                **given,
            )
            return
        if name is None:  # refused by the parser's check (cli.versioning.usage_problem)
            raise DockerPkgError.single(directory, "update takes NAME and DIRECTORY")
        self.update_name(name, directory, reason=reason, version=version, **given)

    def update_name(
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
