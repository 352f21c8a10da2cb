"""Command line: parse, call one library function, print, choose the exit status."""

from __future__ import annotations

import argparse
import datetime
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import argh
import attrs

from dockerpkg import api
from dockerpkg.core.plan import BuildOptions
from dockerpkg.core.serialize import plan_to_json, plan_to_text
from dockerpkg.errors import DockerPkgError, Problem, Severity

EXIT_OK, EXIT_ERROR = 0, 1


@attrs.frozen
class Context:
    """Options given before the verb, shared by every command of one invocation."""

    config_path: str | None
    env: dict[str, str]
    now: datetime.datetime


def nightly_suffix(now: datetime.datetime, *, nightly: bool, snapshot: bool) -> str:
    if snapshot:
        return now.strftime("-%Y%m%d-%H%M%S")
    if nightly:
        return now.strftime("-%Y%m%d")
    return ""


def print_problems(problems: Sequence[Problem]) -> None:
    for problem in problems:
        print(problem, file=sys.stderr)


def _commands(ctx: Context) -> list[Callable[..., Any]]:
    @argh.arg("directory", help="the image tree")
    @argh.arg("--json", dest="json_output", help="print the plan as JSON")
    @argh.arg("--select", help="fnmatch glob on full labels (registry/namespace/name:tag)")
    @argh.arg("--out", help="also save the plan as JSON to this file, for `apply PLAN.json`")
    def plan(
        directory: str,
        *,
        offline: bool = False,
        json_output: bool = False,
        select: str | None = None,
        nightly: bool = False,
        snapshot: bool = False,
        no_pull: bool = False,
        use_cache: bool = False,
        out: str | None = None,
    ) -> None:
        """Show what `build` would do, as text or stable JSON."""
        if nightly and snapshot:
            raise DockerPkgError.single(directory, "--nightly and --snapshot exclude each other")
        suffix = nightly_suffix(ctx.now, nightly=nightly, snapshot=snapshot)
        workspace = api.load_workspace(directory, ctx.config_path, ctx.env, suffix)
        print_problems(workspace.warnings)
        options = BuildOptions(select=select, pull=not no_pull, use_cache=use_cache, suffix=suffix)
        result = api.build_plan(workspace, options=options)
        if out:
            Path(out).write_text(plan_to_json(result), encoding="utf-8")
        sys.stdout.write(plan_to_json(result) if json_output else plan_to_text(result))

    return [plan]


def _global_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("-c", "--configfile", default=None)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--debug", action="store_true")
    group.add_argument("--info", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 fine, 1 errors)."""
    args = list(sys.argv[1:] if argv is None else argv)
    known, rest = _global_parser().parse_known_args(args)
    level = logging.DEBUG if known.debug else logging.INFO if known.info else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    ctx = Context(config_path=known.configfile, env=dict(os.environ), now=datetime.datetime.now())
    parser = argh.ArghParser(
        prog="dockerpkg",
        description="Build, verify, publish, prune and version trees of Docker images.",
        parents=[_global_parser()],
    )
    parser.add_commands(_commands(ctx))
    try:
        parser.dispatch(argv=rest)
    except DockerPkgError as exc:
        print_problems(exc.problems)
        errors = sum(1 for p in exc.problems if p.severity is Severity.ERROR)
        print(f"dockerpkg: {errors} error(s); nothing was changed", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    return EXIT_OK
