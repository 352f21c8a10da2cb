"""The refs verb, for the places that use the tree's images: `refs` lists every reference
(and with --apply moves the outdated ones), `plan refs --out` saves the edits, `apply refs`
makes them. Parse, call dockerpkg.api.refs, print, choose the status."""

from __future__ import annotations

import sys
from pathlib import Path

import argh

from dockerpkg.api import limit_warnings, read_plan_text
from dockerpkg.api import refs as refs_api
from dockerpkg.cli.common import EXIT_CHANGES, EXIT_ERROR, Context, ExitStatus, locked
from dockerpkg.core.refsplan import UsagePlan, UseState
from dockerpkg.core.refsrender import (
    plan_from_json,
    plan_to_json,
    plan_to_markdown,
    plan_to_text,
    skipped_lines,
)
from dockerpkg.errors import DockerPkgError, problem_lines

_FORMATS = ("text", "json", "markdown")
_PATHS_HELP = "files or folders to look through (default: the config's refs: paths)"
_APPLY_PATHS_HELP = (
    "files or folders the plan may edit besides the tree and the config's refs: paths "
    "(give those the plan was made with)"
)
_ONLINE_HELP = "also ask the registry: a current version not published yet is not_published"
_FORMAT_HELP = "print the references as text, json or markdown"
_EXITCODE_HELP = "exit 2 when a reference is outdated (1 when files were not looked through)"


def _show(plan: UsagePlan, output_format: str) -> None:
    if output_format == "json":
        sys.stdout.write(plan_to_json(plan))
    elif output_format == "markdown":
        sys.stdout.write(plan_to_markdown(plan))
    else:
        sys.stdout.write(plan_to_text(plan))


def _status(plan: UsagePlan, detailed: bool) -> None:
    """Exit 1 for unknown references; with DETAILED, 1 too when files that may hold
    references were not looked through (the answer is incomplete: 0 would say every
    reference is current), else 2 for outdated references."""
    unknown = [u for u in plan.uses if u.state is UseState.UNKNOWN]
    for use in unknown:
        print(
            f"{use.path}:{use.line}: error: {use.text}: {use.note} (a deleted image still in use?)",
            file=sys.stderr,
        )
    if unknown:
        raise ExitStatus(EXIT_ERROR)
    if detailed and plan.skipped:
        print(
            f"dockerpkg: {len(plan.skipped)} file(s) that may hold references were not looked "
            "through: cannot tell whether every reference is current",
            file=sys.stderr,
        )
        raise ExitStatus(EXIT_ERROR)
    if detailed and plan.count(UseState.OUTDATED):
        raise ExitStatus(EXIT_CHANGES)


class RefsCommands:
    """refs, plan refs and apply refs, sharing CTX (global options, environment)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def _plan(self, directory: str, paths: list[str], online: bool) -> UsagePlan:
        return self._run(directory, paths, online).plan

    def _run(self, directory: str, paths: list[str], online: bool) -> refs_api.RefsRun:
        run = refs_api.refs_plan(
            directory, self.ctx.config_path, self.ctx.env, paths, online=online
        )
        for line in problem_lines(run.workspace.warnings, directory, every=self.ctx.echo):
            print(line, file=sys.stderr)
        for line in skipped_lines(run.plan):
            print(line, file=sys.stderr)
        for line in limit_warnings(run.gates):
            print(line, file=sys.stderr)
        if run.finished is not None:
            print(
                f"{directory}: an interrupted refs --apply was finished: "
                + ", ".join(run.finished),
                file=sys.stderr,
            )
        return run

    @argh.arg("directory", metavar="DIRECTORY", help="the image tree")
    @argh.arg("paths", nargs="*", metavar="PATH", help=_PATHS_HELP)
    @argh.arg("--json", "-j", dest="json_output", help="print the references as JSON")
    @argh.arg("--format", dest="output_format", choices=_FORMATS, help=_FORMAT_HELP)
    @argh.arg("--online", help=_ONLINE_HELP)
    @argh.arg("--detailed-exitcode", "-d", help=_EXITCODE_HELP)
    @argh.arg("--apply", "-a", dest="apply_edits", help="move the outdated references: all or none")
    def refs(
        self,
        directory: str,
        *paths: str,
        json_output: bool = False,
        output_format: str = "text",
        online: bool = False,
        detailed_exitcode: bool = False,
        apply_edits: bool = False,
    ) -> None:
        """List every reference to the tree's images in other files (CI jobs, Helm values,
        manifests), its state, and the edit that moves an outdated one."""
        with locked(directory, wait=False):
            run = self._run(directory, list(paths), online)
            plan = run.plan
            _show(plan, "json" if json_output else output_format)
            if apply_edits:
                written = refs_api.write_refs(run.plan, run.workspace, run.paths)
                print(f"Edited {len(written)} file(s).", file=sys.stderr)
                return
        _status(plan, detailed_exitcode)

    @argh.arg("directory", metavar="DIRECTORY", help="the image tree")
    @argh.arg("paths", nargs="*", metavar="PATH", help=_PATHS_HELP)
    @argh.arg("--out", help="save the plan as JSON to this file, for `apply refs REFS.json`")
    @argh.arg("--format", dest="output_format", choices=_FORMATS, help=_FORMAT_HELP)
    @argh.arg("--online", help=_ONLINE_HELP)
    @argh.arg("--detailed-exitcode", "-d", help=_EXITCODE_HELP)
    def plan_refs(
        self,
        directory: str,
        *paths: str,
        out: str | None = None,
        output_format: str = "text",
        online: bool = False,
        detailed_exitcode: bool = False,
    ) -> None:
        """Show the edits `refs --apply` would make (saved with --out, for `apply refs`)."""
        with locked(directory, wait=False):  # it may finish an interrupted write first
            plan = self._plan(directory, list(paths), online)
        if out:
            try:
                Path(out).write_text(plan_to_json(plan), encoding="utf-8")
            except OSError as exc:
                raise DockerPkgError.single(out, f"cannot write: {exc.strerror}") from None
        _show(plan, output_format)
        _status(plan, detailed_exitcode)

    @argh.arg("plan", metavar="REFS.json", help="a plan saved by `plan refs --out`")
    @argh.arg("paths", nargs="*", metavar="PATH", help=_APPLY_PATHS_HELP)
    def apply_refs(self, plan: str, *paths: str) -> None:
        """Make the edits of a plan saved by `plan refs --out`, all or none; refused when a
        file changed since the plan was made, or when an edit is not one refs derives from
        the tree, or is in a file outside the tree, the PATHs and the config's refs: paths."""
        saved = plan_from_json(read_plan_text(plan), plan)
        with locked(saved.directory, wait=False):
            written = refs_api.write_saved_refs(
                saved, self.ctx.config_path, self.ctx.env, list(paths)
            )
        print(f"Edited {len(written)} file(s).", file=sys.stderr)
