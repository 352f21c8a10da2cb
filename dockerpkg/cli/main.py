"""The command line: global options, then one verb, perhaps one of its sub-commands
(`plan update`); each verb is a module of its own (build: plan, apply, build, diff; update,
updateplan, prune; refs; review: graph, lint). cli/parsing.py says how they are parsed."""

from __future__ import annotations

import datetime
import importlib.metadata
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NoReturn

import argcomplete
import argh
import attrs

from dockerpkg.cli import build, prune, refs, review, update, updateplan
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
from dockerpkg.cli.parsing import (
    CommandParser,
    Commands,
    HelpFormatter,
    add_globals,
    command,
    group,
)
from dockerpkg.cli.versioning import saved_action, usage_problem
from dockerpkg.core.plan import Action
from dockerpkg.errors import DockerPkgError, Severity

PROG = "dockerpkg"
# How update and plan update are parsed: options between NAME and DIRECTORY, as docker-pkg
# had them, and one kind of update with only its options.
_CHANGELOGS: dict[str, Any] = {"intermixed": True, "check": usage_problem}
VERBS = "plan, apply, build, update, prune, refs, diff, graph, lint"


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C raises KeyboardInterrupt, so that the same clean-up runs
    (staged changelogs removed, temporary folders deleted) before exit status 143."""


def _raise_terminated(signum: int, frame: object) -> NoReturn:
    raise Terminated


def _version() -> str:
    try:
        return importlib.metadata.version("dockerpkg")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout not installed
        return "unknown (not installed)"


def _saved_plan_command(words: list[str]) -> str | None:
    """`apply PLAN.json` runs any saved plan: the sub-command its action names (None: a
    build plan, or a tree, for `apply` itself)."""
    action = saved_action(words[0]) if words else None
    return action if action in {Action.UPDATE.value, Action.PRUNE.value, "refs"} else None


def _commands(ctx: Context) -> Iterator[tuple[str, CommandParser, str | None]]:
    """Each verb: its name, its parser, its line in --help (None: a hidden alias of an old
    spelling, which keeps working)."""
    b, v = build.BuildCommands(ctx), review.ReviewCommands(ctx)
    u, up = update.UpdateCommands(ctx), updateplan.UpdatePlanCommands(ctx)
    p, r = prune.PruneCommands(ctx), refs.RefsCommands(ctx)

    def cmd(function: Callable[..., Any], words: str, **how: Any) -> CommandParser:
        return command(function, f"{PROG} {words}", **how)

    plan = group(
        f"{PROG} plan",
        cmd(b.plan, "plan"),
        {
            "update": (
                cmd(up.plan_update, "plan update", **_CHANGELOGS),
                "the changelog entries update would add (NAME, --all, --changed-bases)",
            ),
            "prune": (cmd(p.plan_prune, "plan prune"), "the old images prune would remove"),
            "refs": (cmd(r.plan_refs, "plan refs"), "the edits refs --apply would make"),
        },
    )
    apply = group(
        f"{PROG} apply",
        cmd(b.apply, "apply"),
        {
            "update": (
                cmd(up.apply_update, "apply update"),
                "write a saved update plan, or plan NAME and write at once",
            ),
            "prune": (
                cmd(p.apply_prune, "apply prune"),
                "remove the images of a saved prune plan, or prune a tree",
            ),
            "refs": (cmd(r.apply_refs, "apply refs"), "make a saved refs plan's edits"),
        },
        route=_saved_plan_command,
    )
    yield "plan", plan, "show what build would do; plan update|prune|refs: what those would change"
    yield (
        "apply",
        apply,
        "carry out a saved plan, or plan a tree and build; apply update|prune|refs",
    )
    yield "build", cmd(b.build, "build"), "docker-pkg's verb: plan, then build, verify, publish"
    yield (
        "update",
        cmd(u.update, "update", **_CHANGELOGS),
        "new versions: NAME and its dependents, --all, --changed-bases",
    )
    yield "prune", cmd(p.prune, "prune"), "remove the old local images of the tree's images"
    yield "refs", cmd(r.refs, "refs"), "list (and move) the references to the tree's images"
    yield "diff", cmd(build.diff, "diff"), "compare two saved plans (a forgotten changelog entry)"
    yield "graph", cmd(v.graph, "graph"), "print the dependency graph (dot or mermaid)"
    yield "lint", cmd(v.lint, "lint"), "check the tree without a daemon"
    yield from _old_spellings(u, up, p, r)


def _old_spellings(
    u: update.UpdateCommands,
    up: updateplan.UpdatePlanCommands,
    p: prune.PruneCommands,
    r: refs.RefsCommands,
) -> Iterator[tuple[str, CommandParser, None]]:
    """The spellings made by rewriting argv before there were sub-commands: each runs the
    command that replaced it (with the option it stood for), hidden from --help."""
    aliases: dict[str, tuple[str, Callable[..., Any], dict[str, bool]]] = {
        "plan-update": ("plan update", up.plan_update, {}),
        "plan-update-all": ("plan update --all", up.plan_update, {"all": True}),
        "plan-update-changed-bases": (
            "plan update --changed-bases",
            up.plan_update,
            {"changed_bases": True},
        ),
        "apply-update": ("apply update", up.apply_update, {}),
        "update-all": ("update --all", u.update, {"all": True}),
        "update-changed-bases": ("update --changed-bases", u.update, {"changed_bases": True}),
        "update-resume": ("update --resume", u.update, {"resume": True}),
        "update-discard": ("update --discard", u.update, {"discard": True}),
        "plan-prune": ("plan prune", p.plan_prune, {}),
        "apply-prune": ("apply prune", p.apply_prune, {}),
        "plan-refs": ("plan refs", r.plan_refs, {}),
        "apply-refs": ("apply refs", r.apply_refs, {}),
    }
    for name, (spelling, function, defaults) in aliases.items():
        how = _CHANGELOGS if function in (up.plan_update, u.update) else {}
        alias = command(function, f"{PROG} {name}", defaults=defaults, **how)
        alias.description = f"The old spelling of `{PROG} {spelling}`.\n\n{alias.description}"
        yield name, alias, None


def make_parser(ctx: Context) -> argh.ArghParser:
    """The whole command line, its commands sharing CTX."""
    parser = argh.ArghParser(
        prog=PROG,
        description="Build, verify, publish, prune and version trees of Docker images.",
        formatter_class=HelpFormatter,
    )
    add_globals(parser, hidden=False)
    parser.add_argument(
        "--version",
        action="version",
        version=f"{PROG} {_version()}",
        help="print dockerpkg's version and exit",
    )
    verbs = parser.add_subparsers(action=Commands, title="verbs", metavar="VERB")
    assert isinstance(verbs, Commands)
    for name, verb, summary in _commands(ctx):
        verbs.register(name, verb, summary)
    return parser


def _bound(function: Callable[..., Any], ctx: Context) -> Callable[..., Any]:
    """FUNCTION as a method of a commands object holding CTX: the parser was made before
    the global options were read, with commands holding a context without them."""
    owner = getattr(function, "__self__", None)
    return function if owner is None else getattr(type(owner)(ctx), function.__name__)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 fine, 1 errors)."""
    args = list(sys.argv[1:] if argv is None else argv)
    base = Context(config_path=None, env=dict(os.environ), now=datetime.datetime.now())
    parser = make_parser(base)
    argcomplete.autocomplete(parser)  # completes and exits only when a shell asks
    found = parser.parse_args(args)
    level = logging.DEBUG if found.debug else logging.INFO if found.info else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    ctx = attrs.evolve(base, config_path=found.configfile, echo=found.debug or found.info)
    try:
        function = _bound(found.get_function(), ctx)
    except IndexError:  # no verb
        parser.print_usage(sys.stderr)
        print(f"{PROG}: a verb is needed ({VERBS})", file=sys.stderr)
        return EXIT_USAGE
    # SIGTERM ends the run the way Ctrl-C does (only the main thread may set handlers).
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if in_main_thread else None
    try:
        argh.dispatching.run_endpoint_function(function, found)
    except DockerPkgError as exc:
        print_problems(exc.problems, every=ctx.echo)
        errors = sum(1 for p in exc.problems if p.severity is Severity.ERROR)
        print(f"{PROG}: {errors} error(s); nothing was changed", file=sys.stderr)
        return EXIT_ERROR
    except ExitStatus as status:
        return status.code
    except Terminated:
        print(f"{PROG}: terminated", file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
    return EXIT_OK
