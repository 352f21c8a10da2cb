"""Command line: parse, call one library function, print, choose the exit status."""

from __future__ import annotations

import functools
import json
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import argh
import attrs

from dockerpkg import api
from dockerpkg.cli.common import (
    EXIT_CHANGES,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    WAIT_LOCK_HELP,
    Context,
    ExitStatus,
    locked,
    print_problems,
)
from dockerpkg.cli.parsing import arg, declared
from dockerpkg.core.markdown import plan_to_markdown
from dockerpkg.core.plan import Action, BuildEngine, CacheMode, Plan, PublishMode
from dockerpkg.core.plandiff import diff_plans, diff_to_data, diff_to_text
from dockerpkg.core.report import (
    Report,
    publication_line,
    registry_lines,
    report_table,
    report_to_json,
    summary_line,
)
from dockerpkg.core.secrets import SecretSource, parse_secret_flag, parse_ssh_flag
from dockerpkg.core.serialize import plan_to_json, plan_to_text
from dockerpkg.errors import DockerPkgError


@attrs.frozen
class PlanFlags:
    """docker-pkg's build flags, shared by plan, apply and build, as given."""

    select: str | None = None
    nightly: bool = False
    snapshot: bool = False
    no_pull: bool = False
    use_cache: bool = False
    builders: str | None = None  # --builders URL[=SLOTS],...
    publish: str | None = None  # --publish MODE; None: the config's
    secrets: tuple[str, ...] = ()  # --secret id=ID,env=VAR|src=PATH, over the config's
    cache: str | None = None  # --cache MODE; None: the config's
    ssh: tuple[str, ...] = ()  # --ssh default|ID[=PATH], over the config's
    engine: str | None = None  # --engine; None: DOCKER_BUILDKIT, else the config's


@attrs.frozen
class RunFlags:
    """How apply and build carry a plan out: flags they share."""

    jobs: int | None = None
    report: str | None = None
    quiet: bool = False
    run_dir: str | None = None
    build_timeout: float | None = None
    verify_timeout: float | None = None
    transfer_timeout: float | None = None


def _secret_flags(secrets: Sequence[str], ssh: Sequence[str]) -> tuple[SecretSource, ...]:
    """--secret and --ssh, parsed."""
    given = tuple(parse_secret_flag(text) for text in secrets)
    return given + tuple(parse_ssh_flag(text) for text in ssh)


def _request(ctx: Context, flags: PlanFlags, *, offline: bool = False) -> api.PlanRequest:
    return api.PlanRequest(
        env=ctx.env,
        config_path=ctx.config_path,
        select=flags.select,
        nightly=flags.nightly,
        snapshot=flags.snapshot,
        now=ctx.now,
        pull=not flags.no_pull,
        use_cache=flags.use_cache,
        builders=flags.builders,
        publish=PublishMode(flags.publish) if flags.publish else None,
        cache=CacheMode(flags.cache) if flags.cache else None,
        engine=BuildEngine(flags.engine) if flags.engine else None,
        secrets=_secret_flags(flags.secrets, flags.ssh),
        offline=offline,
    )


def _make_plan(
    ctx: Context, directory: str, request: api.PlanRequest, *, render_all: bool = False
) -> api.PlannedRun:
    # `plan` renders everything and looks for drift; `build` stays a quick no-op.
    planned = api.plan_run(
        directory,
        attrs.evolve(request, render_all=render_all),
        on_read=lambda workspace: _print_warnings(ctx, workspace),
    )
    # What limited the checks is said here, not in the plan (which stays deterministic).
    for line in api.limit_warnings(planned.gates):
        print(line, file=sys.stderr)
    return planned


def _print_warnings(ctx: Context, workspace: api.Workspace) -> None:
    print_problems(workspace.warnings, workspace.directory, every=ctx.echo)


def _check_timeouts(**given: float | None) -> None:
    """Each of GIVEN (a flag's name with _ for -) is None or a number of seconds above 0."""
    for name, seconds in given.items():
        if seconds is not None and not 0 < seconds < float("inf"):
            flag = "--" + name.replace("_", "-")
            raise DockerPkgError.single(flag, "expected a number of seconds above 0")


def _execute(ctx: Context, planned: api.PlannedRun, flags: RunFlags) -> None:
    """Carry out PLANNED with progress, signal handling and the final report; exit 1 on
    failure.

    Ctrl-C stops starting work, a second one cancels running work; SIGTERM does both at once
    (whoever sends it will not wait long). Either way the report of what was done is printed,
    and the exit status is 130 (Ctrl-C) or 143 (SIGTERM).
    """
    quiet = flags.quiet
    options = api.apply_options(
        planned,
        run_dir=flags.run_dir,
        now=ctx.now,
        jobs=flags.jobs,
        build_timeout=flags.build_timeout,
        verify_timeout=flags.verify_timeout,
        transfer_timeout=flags.transfer_timeout,
    )
    countable = sum(1 for _ in planned.plan.steps)
    progress_class = api.LiveProgress if sys.stderr.isatty() and not quiet else api.LineProgress
    progress = progress_class(sys.stderr, total=countable, quiet=quiet)
    interrupt = api.Interrupt()
    if not quiet:
        print(f"Logs: {options.run_dir}", file=sys.stderr)
    received: set[int] = set()

    def on_signal(signum: int, frame: object) -> None:
        received.add(signum)
        if signum == signal.SIGTERM:
            print("\nterminating: cancelling running work", file=sys.stderr)
            interrupt.cancel()
        elif interrupt.stop.is_set():
            print("\ncancelling running work", file=sys.stderr)
            interrupt.cancel()
        else:
            print("\nstopping: no new work starts; Ctrl-C again cancels", file=sys.stderr)
            interrupt.stop.set()

    previous = {signum: signal.signal(signum, on_signal) for signum in _STOP_SIGNALS}
    try:
        echo = sys.stderr if ctx.echo else None
        result = api.apply_run(planned, options, progress, interrupt=interrupt, echo=echo)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if isinstance(progress, api.LiveProgress):
            progress.close()
    _finish(result, planned.plan, flags, received)


def _finish(result: Report, plan: Plan, flags: RunFlags, received: set[int]) -> None:
    """Print RESULT (and write it to --report), then exit as it ended."""
    if flags.report:
        Path(flags.report).write_text(report_to_json(result, plan), encoding="utf-8")
    if not flags.quiet or result.failed:
        sys.stdout.write(report_table(result))
    print(summary_line(result))
    for line in registry_lines(result):
        print(line)
    published = publication_line(result)
    if published is not None:
        print(published)
    if result.interrupted:
        raise ExitStatus(EXIT_TERMINATED if signal.SIGTERM in received else EXIT_INTERRUPTED)
    if result.failed:
        raise ExitStatus(EXIT_ERROR)


FORMATS = ("text", "json", "markdown")

# Help of the options plan, apply and build share.
_SELECT_HELP = "fnmatch glob on full labels (registry/namespace/name:tag)"
_JOBS_HELP = "builds at once (default: 8 with BuildKit, 4 with the classic engine)"
_REPORT_HELP = "write the run report as JSON to this file"
_RUN_DIR_HELP = "folder for per-image logs (default: a new one under /tmp)"
_BUILD_TIMEOUT_HELP = "stop a build still running after SECONDS (default: config build_timeout)"
_VERIFY_TIMEOUT_HELP = (
    "stop a verification still running after SECONDS (default: config verify_timeout)"
)
_TRANSFER_TIMEOUT_HELP = (
    "fail a pull or push that waits SECONDS for the daemon (default: config transfer_timeout, 300)"
)
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_FORMAT_HELP = "print the plan as text, json or markdown (a review comment)"
_NIGHTLY_HELP = "append -YYYYMMDD (today) to every tag of the tree"
_SNAPSHOT_HELP = "append -YYYYMMDD-HHMMSS (now) to every tag of the tree"
_NO_PULL_HELP = "do not pull what is published: build what the daemon does not have"
_USE_CACHE_HELP = "let builds use the daemon's layer cache"
_QUIET_HELP = "show only failures: no progress, no table when all went well"
_PUBLISH_HELP = (
    "per_image: each image's tags move when it is verified (default: config publish); "
    "all_or_nothing: only once every image of the run is built, verified and staged"
)
_PUBLISH_CHOICES = tuple(mode.value for mode in PublishMode)
_SECRET_HELP = "a build secret for this run, as buildx: id=ID,env=VARIABLE or id=ID,src=PATH"  # noqa: S105
_SECRET_METAVAR = "id=ID,env=VAR|src=PATH"  # noqa: S105
_SSH_HELP = (
    "an SSH agent for RUN --mount=type=ssh in this run, as buildx: default (SSH_AUTH_SOCK), "
    "ID, or ID=PATH (an agent's socket or a private key)"
)
_CACHE_HELP = (
    "registry: also import layers from published versions and write inline cache; none: only "
    "the daemon's (default: config cache)"
)
_CACHE_CHOICES = tuple(mode.value for mode in CacheMode)
_ENGINE_HELP = (
    "the build engine for this run (default: DOCKER_BUILDKIT=0/1, else the config's "
    "build_engine); the plan records it"
)
_ENGINE_CHOICES = tuple(engine.value for engine in BuildEngine)
_BUILDERS_HELP = (
    "build on these Docker hosts, SLOTS builds at once on each (default: --jobs), "
    "instead of the config's `builders` or DOCKER_HOST"
)


# The flags that choose what a run builds and how (plan, apply DIRECTORY, build).
_tree_flags = declared(
    arg("--builders", metavar="URL[=SLOTS],...", help=_BUILDERS_HELP),
    arg("--publish", "-p", metavar="MODE", choices=_PUBLISH_CHOICES, help=_PUBLISH_HELP),
    arg("--secret", action="append", metavar=_SECRET_METAVAR, help=_SECRET_HELP),
    arg("--ssh", action="append", metavar="default|ID[=PATH]", help=_SSH_HELP),
    arg("--cache", metavar="MODE", choices=_CACHE_CHOICES, help=_CACHE_HELP),
    arg("--engine", "-e", choices=_ENGINE_CHOICES, help=_ENGINE_HELP),
    arg("--nightly", help=_NIGHTLY_HELP),
    arg("--snapshot", help=_SNAPSHOT_HELP),
    arg("--no-pull", help=_NO_PULL_HELP),
    arg("--use-cache", "-u", help=_USE_CACHE_HELP),
)
# The flags of carrying a plan out (apply, build).
_run_flags = declared(
    arg("--jobs", "-j", type=int, help=_JOBS_HELP),
    arg("--report", help=_REPORT_HELP),
    arg("--run-dir", help=_RUN_DIR_HELP),
    arg("--quiet", "-q", help=_QUIET_HELP),
    arg("--wait-lock", "-w", help=WAIT_LOCK_HELP),
    arg("--build-timeout", type=float, metavar="SECONDS", help=_BUILD_TIMEOUT_HELP),
    arg("--verify-timeout", type=float, metavar="SECONDS", help=_VERIFY_TIMEOUT_HELP),
    arg("--transfer-timeout", type=float, metavar="SECONDS", help=_TRANSFER_TIMEOUT_HELP),
)


@argh.arg("old", metavar="OLD.json", help="the plan before (e.g. of the base branch)")
@argh.arg("new", metavar="NEW.json", help="the plan after (e.g. of the change)")
@argh.arg("--json", "-j", dest="json_output", help="print the changes as JSON")
def diff(old: str, new: str, *, json_output: bool = False) -> None:
    """Compare two saved plans: images added, removed, with a new version, or changed
    without one (exit 2: a forgotten changelog entry). Offline, on plan files only."""
    changes = diff_plans(api.read_saved_plan(old), api.read_saved_plan(new))
    if json_output:
        sys.stdout.write(json.dumps(diff_to_data(changes), indent=2, sort_keys=True) + "\n")
    else:
        sys.stdout.write(diff_to_text(changes))
    if changes.forgotten_bumps:
        raise ExitStatus(EXIT_CHANGES)


class BuildCommands:
    """The plan, apply, build and diff commands, sharing CTX (global options, environment,
    clock)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    @argh.arg("directory", metavar="DIRECTORY", help="the image tree")
    @argh.arg("--json", "-j", dest="json_output", help="print the plan as JSON")
    @argh.arg("--select", help=_SELECT_HELP)
    @argh.arg("--out", help="also save the plan as JSON to this file, for `apply PLAN.json`")
    @argh.arg("--offline", help="observe nothing: assume no image is built or published")
    @argh.arg("--detailed-exitcode", "-d", help="exit 2 when the plan has changes, 0 when empty")
    @argh.arg("--format", dest="output_format", choices=FORMATS, help=_FORMAT_HELP)
    @argh.arg("--base", help="a saved plan to show Dockerfile diffs against (markdown)")
    @_tree_flags
    def plan(
        self,
        directory: str,
        *,
        offline: bool = False,
        json_output: bool = False,
        output_format: str = "text",
        base: str | None = None,
        select: str | None = None,
        nightly: bool = False,
        snapshot: bool = False,
        no_pull: bool = False,
        use_cache: bool = False,
        out: str | None = None,
        detailed_exitcode: bool = False,
        builders: str | None = None,
        publish: str | None = None,
        secret: list[str] | None = None,
        cache: str | None = None,
        ssh: list[str] | None = None,
        engine: str | None = None,
    ) -> None:
        """Show what `build` would do, as text or stable JSON."""
        flags = PlanFlags(
            select,
            nightly,
            snapshot,
            no_pull,
            use_cache,
            builders,
            publish,
            tuple(secret or ()),
            cache,
            tuple(ssh or ()),
            engine,
        )
        base_plan = api.read_saved_plan(base) if base else None
        request = _request(self.ctx, flags, offline=offline)
        # A plan shows every Dockerfile and every template error.
        result = _make_plan(self.ctx, directory, request, render_all=True).plan
        if out:
            Path(out).write_text(plan_to_json(result), encoding="utf-8")
        if json_output or output_format == "json":
            sys.stdout.write(plan_to_json(result))
        elif output_format == "markdown":
            sys.stdout.write(plan_to_markdown(result, base_plan))
        else:
            sys.stdout.write(plan_to_text(result, needs=self.ctx.echo))
        if detailed_exitcode and result.has_changes:
            raise ExitStatus(EXIT_CHANGES)

    @argh.arg(
        "target",
        metavar="PLAN.json|DIRECTORY",
        help="a saved plan (of any action) or an image tree to plan and apply",
    )
    @argh.arg("--select", help="fnmatch glob on full labels (with a DIRECTORY)")
    @_run_flags
    @_tree_flags
    def apply(
        self,
        target: str,
        *,
        select: str | None = None,
        nightly: bool = False,
        snapshot: bool = False,
        no_pull: bool = False,
        use_cache: bool = False,
        jobs: int | None = None,
        report: str | None = None,
        quiet: bool = False,
        run_dir: str | None = None,
        wait_lock: bool = False,
        build_timeout: float | None = None,
        verify_timeout: float | None = None,
        transfer_timeout: float | None = None,
        builders: str | None = None,
        publish: str | None = None,
        secret: list[str] | None = None,
        cache: str | None = None,
        ssh: list[str] | None = None,
        engine: str | None = None,
    ) -> None:
        """Execute a saved plan (refused if stale), or plan DIRECTORY and execute at once."""
        _check_timeouts(
            build_timeout=build_timeout,
            verify_timeout=verify_timeout,
            transfer_timeout=transfer_timeout,
        )
        if not os.path.lexists(target):
            raise DockerPkgError.single(target, "no such file or folder: give a plan or a tree")
        run = RunFlags(
            jobs, report, quiet, run_dir, build_timeout, verify_timeout, transfer_timeout
        )
        ctx = self.ctx
        if Path(target).is_file() and publish is not None:
            raise DockerPkgError.single(
                target,
                "--publish goes with a DIRECTORY: a saved plan keeps the mode it was made with",
            )
        if Path(target).is_file() and engine is not None:
            raise DockerPkgError.single(
                target,
                "--engine goes with a DIRECTORY: a saved plan keeps the engine it was made with",
            )
        if Path(target).is_file():
            lock = functools.partial(locked, wait=wait_lock)
            with api.opened_saved_plan(target, ctx.config_path, ctx.env, Action.BUILD, lock) as (
                saved,
                workspace,
            ):
                print_problems(workspace.warnings, workspace.directory, every=ctx.echo)
                given = _secret_flags(secret or (), ssh or ())
                planned = api.saved_run(
                    saved, workspace, ctx.env, target, builders=builders, secrets=given
                )
                _execute(ctx, planned, run)
            return
        with locked(target, wait=wait_lock):
            flags = PlanFlags(
                select,
                nightly,
                snapshot,
                no_pull,
                use_cache,
                builders,
                publish,
                tuple(secret or ()),
                cache,
                tuple(ssh or ()),
                engine,
            )
            _execute(ctx, _make_plan(ctx, target, _request(ctx, flags)), run)

    @argh.arg("directory", metavar="DIRECTORY", help="the image tree")
    @argh.arg("--select", help=_SELECT_HELP)
    @_run_flags
    @_tree_flags
    def build(
        self,
        directory: str,
        *,
        nightly: bool = False,
        snapshot: bool = False,
        use_cache: bool = False,
        no_pull: bool = False,
        select: str | None = None,
        jobs: int | None = None,
        report: str | None = None,
        quiet: bool = False,
        run_dir: str | None = None,
        wait_lock: bool = False,
        build_timeout: float | None = None,
        verify_timeout: float | None = None,
        transfer_timeout: float | None = None,
        builders: str | None = None,
        publish: str | None = None,
        secret: list[str] | None = None,
        cache: str | None = None,
        ssh: list[str] | None = None,
        engine: str | None = None,
    ) -> None:
        """docker-pkg's verb: print the plan, then apply it."""
        _check_timeouts(
            build_timeout=build_timeout,
            verify_timeout=verify_timeout,
            transfer_timeout=transfer_timeout,
        )
        flags = PlanFlags(
            select,
            nightly,
            snapshot,
            no_pull,
            use_cache,
            builders,
            publish,
            tuple(secret or ()),
            cache,
            tuple(ssh or ()),
            engine,
        )
        with locked(directory, wait=wait_lock):
            planned = _make_plan(self.ctx, directory, _request(self.ctx, flags))
            sys.stdout.write(plan_to_text(planned.plan, needs=self.ctx.echo))
            sys.stdout.flush()
            if planned.plan.steps:
                run = RunFlags(
                    jobs, report, quiet, run_dir, build_timeout, verify_timeout, transfer_timeout
                )
                _execute(self.ctx, planned, run)
            elif report:
                written = report_to_json(api.planning_report(planned.gates), planned.plan)
                Path(report).write_text(written, encoding="utf-8")
