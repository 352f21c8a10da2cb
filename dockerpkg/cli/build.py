"""Command line: parse, call one library function, print, choose the exit status."""

from __future__ import annotations

import datetime
import functools
import json
import os
import signal
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
from dockerpkg.core.markdown import plan_to_markdown
from dockerpkg.core.plan import Action, BuildEngine, BuildOptions, CacheMode, Plan, PublishMode
from dockerpkg.core.plandiff import diff_plans, diff_to_data, diff_to_text
from dockerpkg.core.report import (
    Report,
    publication_line,
    report_table,
    report_to_json,
    summary_line,
)
from dockerpkg.core.secrets import parse_secret_flag, parse_ssh_flag
from dockerpkg.core.serialize import plan_to_json, plan_to_text
from dockerpkg.effects.credentials import Credentials
from dockerpkg.effects.progress import LineProgress, LiveProgress
from dockerpkg.effects.tasks import Interrupt
from dockerpkg.errors import DockerPkgError


def nightly_suffix(now: datetime.datetime, *, nightly: bool, snapshot: bool) -> str:
    if snapshot:
        return now.strftime("-%Y%m%d-%H%M%S")
    if nightly:
        return now.strftime("-%Y%m%d")
    return ""


def _suffix(ctx: Context, directory: str, nightly: bool, snapshot: bool) -> str:
    if nightly and snapshot:
        raise DockerPkgError.single(directory, "--nightly and --snapshot exclude each other")
    return nightly_suffix(ctx.now, nightly=nightly, snapshot=snapshot)


@attrs.frozen
class PlanFlags:
    """docker-pkg's build flags, shared by plan, apply and build."""

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


def _make_plan(
    ctx: Context,
    directory: str,
    flags: PlanFlags,
    *,
    offline: bool = False,
    render_all: bool = False,
) -> tuple[Plan, api.Workspace, Credentials | None]:
    suffix = _suffix(ctx, directory, flags.nightly, flags.snapshot)
    workspace, observed, credentials = api.load_and_observe(
        directory,
        ctx.config_path,
        ctx.env,
        suffix,
        render=render_all,
        offline=offline,
        # `plan` renders everything and looks for drift; `build` stays a quick no-op.
        definitions=render_all,
        builders=flags.builders,
        publish=PublishMode(flags.publish) if flags.publish else None,
    )
    print_problems(workspace.warnings, workspace.directory, every=ctx.echo)
    options = BuildOptions(
        select=flags.select,
        pull=not flags.no_pull,
        use_cache=flags.use_cache,
        suffix=suffix,
        publish=PublishMode(flags.publish) if flags.publish else workspace.config.publish,
        cache=CacheMode(flags.cache) if flags.cache else workspace.config.cache,
        engine=api.build_engine(
            workspace.config, ctx.env, BuildEngine(flags.engine) if flags.engine else None
        ),
    )
    given = tuple(parse_secret_flag(text) for text in flags.secrets)
    given += tuple(parse_ssh_flag(text) for text in flags.ssh)
    plan = api.build_plan(workspace, observed, options, given, ctx.env)
    return plan, workspace, credentials


def _check_timeouts(**given: float | None) -> None:
    """Each of GIVEN (a flag's name with _ for -) is None or a number of seconds above 0."""
    for name, seconds in given.items():
        if seconds is not None and not 0 < seconds < float("inf"):
            flag = "--" + name.replace("_", "-")
            raise DockerPkgError.single(flag, "expected a number of seconds above 0")


def _run_dir(ctx: Context, given: str | None) -> Path:
    if given:
        return Path(given)
    stamp = ctx.now.strftime("%Y%m%d-%H%M%S")
    return Path(tempfile.gettempdir()) / "dockerpkg-runs" / f"{stamp}-{os.getpid()}"


def _execute(
    ctx: Context,
    plan: Plan,
    start: Callable[..., Report],
    flags: RunFlags,
) -> None:
    """Carry out PLAN by START (the library call that applies it, given the run's keywords)
    with progress, signal handling and the final report; exit 1 on failure.

    Ctrl-C stops starting work, a second one cancels running work; SIGTERM does both at once
    (whoever sends it will not wait long). Either way the report of what was done is printed,
    and the exit status is 130 (Ctrl-C) or 143 (SIGTERM).
    """
    quiet = flags.quiet
    folder = _run_dir(ctx, flags.run_dir)
    countable = sum(1 for _ in plan.steps)
    progress_class = LiveProgress if sys.stderr.isatty() and not quiet else LineProgress
    progress = progress_class(sys.stderr, total=countable, quiet=quiet)
    interrupt = Interrupt()
    if not quiet:
        print(f"Logs: {folder}", file=sys.stderr)
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
        result = start(
            run_dir=folder,
            listener=progress,
            jobs=flags.jobs,
            echo=sys.stderr if ctx.echo else None,
            interrupt=interrupt,
            build_timeout=flags.build_timeout,
            verify_timeout=flags.verify_timeout,
            transfer_timeout=flags.transfer_timeout,
        )
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if isinstance(progress, LiveProgress):
            progress.close()
    if flags.report:
        Path(flags.report).write_text(report_to_json(result, plan), encoding="utf-8")
    if not quiet or result.failed:
        sys.stdout.write(report_table(result))
    print(summary_line(result))
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
_CACHE_HELP = "registry: import layers from published versions and write inline cache"
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


@argh.arg("old", metavar="OLD.json", help="the plan before (e.g. of the base branch)")
@argh.arg("new", metavar="NEW.json", help="the plan after (e.g. of the change)")
@argh.arg("--json", dest="json_output", help="print the changes as JSON")
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

    @argh.arg("directory", help="the image tree")
    @argh.arg("--json", dest="json_output", help="print the plan as JSON")
    @argh.arg("--select", help=_SELECT_HELP)
    @argh.arg("--out", help="also save the plan as JSON to this file, for `apply PLAN.json`")
    @argh.arg("--offline", help="observe nothing: assume no image is built or published")
    @argh.arg("--detailed-exitcode", help="exit 2 when the plan has changes, 0 when empty")
    @argh.arg("--format", dest="output_format", choices=FORMATS, help="text, json or markdown")
    @argh.arg("--base", help="a saved plan to show Dockerfile diffs against (markdown)")
    @argh.arg("--builders", metavar="URL[=SLOTS],...", help=_BUILDERS_HELP)
    @argh.arg("--publish", metavar="MODE", choices=_PUBLISH_CHOICES, help=_PUBLISH_HELP)
    @argh.arg("--secret", action="append", metavar=_SECRET_METAVAR, help=_SECRET_HELP)
    @argh.arg("--ssh", action="append", metavar="default|ID[=PATH]", help=_SSH_HELP)
    @argh.arg("--cache", metavar="MODE", choices=_CACHE_CHOICES, help=_CACHE_HELP)
    @argh.arg("--engine", choices=_ENGINE_CHOICES, help=_ENGINE_HELP)
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
        # A plan shows every Dockerfile and every template error.
        result, _, _ = _make_plan(self.ctx, directory, flags, offline=offline, render_all=True)
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

    @argh.arg("target", help="a saved plan (PLAN.json) or an image tree to plan and apply")
    @argh.arg("--select", help="fnmatch glob on full labels (with a DIRECTORY)")
    @argh.arg("--jobs", "-j", type=int, help=_JOBS_HELP)
    @argh.arg("--report", help=_REPORT_HELP)
    @argh.arg("--run-dir", help=_RUN_DIR_HELP)
    @argh.arg("--wait-lock", help=WAIT_LOCK_HELP)
    @argh.arg("--build-timeout", type=float, metavar="SECONDS", help=_BUILD_TIMEOUT_HELP)
    @argh.arg("--verify-timeout", type=float, metavar="SECONDS", help=_VERIFY_TIMEOUT_HELP)
    @argh.arg("--transfer-timeout", type=float, metavar="SECONDS", help=_TRANSFER_TIMEOUT_HELP)
    @argh.arg("--builders", metavar="URL[=SLOTS],...", help=_BUILDERS_HELP)
    @argh.arg("--publish", metavar="MODE", choices=_PUBLISH_CHOICES, help=_PUBLISH_HELP)
    @argh.arg("--secret", action="append", metavar=_SECRET_METAVAR, help=_SECRET_HELP)
    @argh.arg("--ssh", action="append", metavar="default|ID[=PATH]", help=_SSH_HELP)
    @argh.arg("--cache", metavar="MODE", choices=_CACHE_CHOICES, help=_CACHE_HELP)
    @argh.arg("--engine", choices=_ENGINE_CHOICES, help=_ENGINE_HELP)
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
                given = tuple(parse_secret_flag(text) for text in secret or ())
                given += tuple(parse_ssh_flag(text) for text in ssh or ())
                start = api.saved_build_run(
                    saved, workspace, ctx.env, target, builders=builders, secrets=given
                )
                _execute(ctx, saved, start, run)
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
            fresh, workspace, credentials = _make_plan(ctx, target, flags)
            start = functools.partial(api.apply_build_plan, fresh, workspace, ctx.env, credentials)
            _execute(ctx, fresh, start, run)

    @argh.arg("directory", help="the image tree")
    @argh.arg("--select", help=_SELECT_HELP)
    @argh.arg("--jobs", "-j", type=int, help=_JOBS_HELP)
    @argh.arg("--report", help=_REPORT_HELP)
    @argh.arg("--run-dir", help=_RUN_DIR_HELP)
    @argh.arg("--wait-lock", help=WAIT_LOCK_HELP)
    @argh.arg("--build-timeout", type=float, metavar="SECONDS", help=_BUILD_TIMEOUT_HELP)
    @argh.arg("--verify-timeout", type=float, metavar="SECONDS", help=_VERIFY_TIMEOUT_HELP)
    @argh.arg("--transfer-timeout", type=float, metavar="SECONDS", help=_TRANSFER_TIMEOUT_HELP)
    @argh.arg("--builders", metavar="URL[=SLOTS],...", help=_BUILDERS_HELP)
    @argh.arg("--publish", metavar="MODE", choices=_PUBLISH_CHOICES, help=_PUBLISH_HELP)
    @argh.arg("--secret", action="append", metavar=_SECRET_METAVAR, help=_SECRET_HELP)
    @argh.arg("--ssh", action="append", metavar="default|ID[=PATH]", help=_SSH_HELP)
    @argh.arg("--cache", metavar="MODE", choices=_CACHE_CHOICES, help=_CACHE_HELP)
    @argh.arg("--engine", choices=_ENGINE_CHOICES, help=_ENGINE_HELP)
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
            result, workspace, credentials = _make_plan(self.ctx, directory, flags)
            sys.stdout.write(plan_to_text(result, needs=self.ctx.echo))
            sys.stdout.flush()
            if result.steps:
                start = functools.partial(
                    api.apply_build_plan, result, workspace, self.ctx.env, credentials
                )
                run = RunFlags(
                    jobs, report, quiet, run_dir, build_timeout, verify_timeout, transfer_timeout
                )
                _execute(self.ctx, result, start, run)


def commands(ctx: Context) -> list[Callable[..., Any]]:
    """The commands of BuildCommands, sharing CTX (global options, environment, clock)."""
    group = BuildCommands(ctx)
    return [group.plan, group.apply, group.build, diff]
