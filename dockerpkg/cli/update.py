"""The update verb: `update NAME DIRECTORY` (docker-pkg's), `update --all`, `update
--changed-bases`, and `update --resume`/`--discard` after an interrupted update. Each plans,
prints and writes at once; `plan update` (cli/updateplan.py) only shows."""

from __future__ import annotations

import sys

import argh

from dockerpkg.api import versioning
from dockerpkg.cli.common import WAIT_LOCK_HELP
from dockerpkg.cli.versioning import (
    UPDATE_KIND,
    UPDATE_OPTIONS,
    Changelogs,
    _locked,
    update_request,
)

_REFS = (
    "also move the references in the config's refs: paths to the new versions, in the same "
    "all-or-nothing write"
)
_RESUME_HELP = "finish an interrupted update: the changelogs it had not written get their entry"
_DISCARD_HELP = "undo an interrupted update: its changelogs put back, its staged files removed"


class UpdateCommands(Changelogs):
    """The update verb in its five kinds, sharing CTX (global options, environment, clock)."""

    @UPDATE_KIND
    @argh.arg("--resume", help=_RESUME_HELP)
    @argh.arg("--discard", help=_DISCARD_HELP)
    @UPDATE_OPTIONS
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
        request = update_request(
            "update",
            name,
            directory,
            all=all,
            changed_bases=changed_bases,
            reason=reason,
            version=version,
            select=select,
            version_suffix=version_suffix,
        )
        with _locked(directory, wait_lock):
            plan, workspace = self.make_plan(directory, request, changed_bases=changed_bases)
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
