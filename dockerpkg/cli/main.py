"""The command line: global options, then one verb; each verb group is a module of its own
(build: plan, apply, build, diff; versioning: update, prune; review: graph, lint)."""

from __future__ import annotations

import argparse
import datetime
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import NoReturn

import argh

from dockerpkg.cli import build, review, usages, versioning
from dockerpkg.cli.common import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TERMINATED,
    EXIT_USAGE,
    Context,
    ExitStatus,
    print_problems,
)
from dockerpkg.cli.versioning import normalize_argv
from dockerpkg.errors import DockerPkgError, Severity


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C raises KeyboardInterrupt, so that the same clean-up runs
    (staged changelogs removed, temporary folders deleted) before exit status 143."""


def _raise_terminated(signum: int, frame: object) -> NoReturn:
    raise Terminated


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
    rest = normalize_argv(rest)  # `plan update` -> plan-update, `update --all` -> update-all
    level = logging.DEBUG if known.debug else logging.INFO if known.info else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    ctx = Context(
        config_path=known.configfile,
        env=dict(os.environ),
        now=datetime.datetime.now(),
        echo=known.debug or known.info,
    )
    parser = argh.ArghParser(
        prog="dockerpkg",
        description="Build, verify, publish, prune and version trees of Docker images.",
        parents=[_global_parser()],
    )
    parser.add_commands(
        [
            *build.commands(ctx),
            *versioning.commands(ctx),
            *review.commands(ctx),
            *usages.commands(ctx),
        ]
    )
    if not rest:
        parser.print_usage(sys.stderr)
        print(
            "dockerpkg: a verb is needed (plan, apply, build, update, prune, refs, diff, graph, "
            "lint)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    # SIGTERM ends the run the way Ctrl-C does (only the main thread may set handlers).
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if in_main_thread else None
    try:
        parser.dispatch(argv=rest)
    except DockerPkgError as exc:
        print_problems(exc.problems, every=ctx.echo)
        errors = sum(1 for p in exc.problems if p.severity is Severity.ERROR)
        print(f"dockerpkg: {errors} error(s); nothing was changed", file=sys.stderr)
        return EXIT_ERROR
    except ExitStatus as status:
        return status.code
    except Terminated:
        print("dockerpkg: terminated", file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        print("dockerpkg: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
    return EXIT_OK
