"""How the command line is parsed: verbs, the sub-commands of a verb (`plan update`), hidden
aliases for old spellings (`plan-update`), and help that says each default once.

argparse gives one level of sub-commands per positional; a verb such as `plan` is both a
command (`plan DIRECTORY`) and the parent of others (`plan update NAME DIRECTORY`), which
argparse cannot say with a positional before the sub-command's name. So a verb's parser keeps
its sub-commands beside it (`CommandParser.subcommands`), and `Commands`, the action that
runs the parser a verb names, picks the sub-command's parser when the next word names one.
Nothing in argv is rewritten: each word is parsed by the parser that declares it.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import argh

# The options given before the verb; also accepted after it (as before: hidden there).
CONFIG_HELP = "the config file (default: config.yaml; without it, the built-in defaults)"
DEBUG_HELP = "log debug messages, and stream build output to the terminal"
INFO_HELP = "log progress, stream build output to the terminal, list every tree warning"


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Each option's help, then its default once: only a default worth saying (not None,
    False or empty) and only when the help does not already say it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            not action.option_strings
            or "default" in text
            or default is argparse.SUPPRESS
            or default in (None, False, "", [], ())
        ):
            return text
        return f"{text} (default: {str(default).replace('%', '%%')})"


Check = Callable[[argparse.Namespace], str | None]


class CommandParser(argh.ArghParser):
    """The parser of one command: its sub-commands by name (`plan update`), whether options
    may come between its positionals (`update NAME --reason TEXT DIRECTORY`), and a check
    of what was given together (a usage error: its message)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)
        self.subcommands: dict[str, CommandParser] = {}
        # Which sub-command the words name when the first is none of theirs (`apply
        # PLAN.json` runs any saved plan: its action names one), or None: this parser's.
        self.route: Callable[[Sequence[str]], str | None] | None = None
        self.intermixed = False
        self.check: Check | None = None


class Commands(argparse._SubParsersAction):  # type: ignore[type-arg]
    """The verbs: runs the parser the first word names, or its sub-command's when the
    second word names one (`plan update ...`)."""

    def register(self, name: str, parser: CommandParser, summary: str | None) -> None:
        """PARSER as the verb NAME; listed in --help with SUMMARY, or hidden (an alias kept
        for an old spelling) without one."""
        if name in self._name_parser_map:
            raise ValueError(f"two verbs called {name}")
        self._name_parser_map[name] = parser
        if summary is not None:
            self._choices_actions.append(self._ChoicesPseudoAction(name, (), summary))

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        name, *words = values
        chosen = self._name_parser_map.get(name)
        if chosen is None:  # argparse's own message
            super().__call__(parser, namespace, values, option_string)
            return
        while isinstance(chosen, CommandParser):
            if words and words[0] in chosen.subcommands:
                chosen = chosen.subcommands[words.pop(0)]
            elif chosen.route is not None and (routed := chosen.route(words)) is not None:
                chosen = chosen.subcommands[routed]
            else:
                break
        parse = (
            chosen.parse_known_intermixed_args
            if isinstance(chosen, CommandParser) and chosen.intermixed
            else chosen.parse_known_args
        )
        # A namespace of its own, copied over, as argparse does for its sub-commands.
        found, rest = parse(words, None)
        if isinstance(chosen, CommandParser) and chosen.check is not None:
            problem = chosen.check(found)
            if problem is not None:
                chosen.error(problem)
        for key, value in vars(found).items():
            setattr(namespace, key, value)
        if rest:
            vars(namespace).setdefault(argparse._UNRECOGNIZED_ARGS_ATTR, []).extend(rest)


def add_globals(parser: argparse.ArgumentParser, *, hidden: bool) -> None:
    """-c/--configfile, --debug and --info: shown before the verb; HIDDEN after it, where
    they set nothing unless given (the values given before the verb stay)."""
    if hidden:
        given: dict[str, Any] = {"default": argparse.SUPPRESS, "help": argparse.SUPPRESS}
        parser.add_argument("-c", "--configfile", metavar="CONFIG", **given)
        parser.add_argument("--debug", action="store_true", **given)
        parser.add_argument("--info", action="store_true", **given)
        return
    parser.add_argument("-c", "--configfile", metavar="CONFIG", default=None, help=CONFIG_HELP)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    group.add_argument("--info", action="store_true", help=INFO_HELP)


def command(
    function: Callable[..., Any],
    prog: str,
    *,
    defaults: dict[str, Any] | None = None,
    intermixed: bool = False,
    check: Check | None = None,
) -> CommandParser:
    """The parser of FUNCTION (its arguments as argh reads them from its signature and its
    @argh.arg declarations), with only the short options declared: argh also makes one from
    every option's first letter, which let `-v` be a timeout here and a version there.
    DEFAULTS: the values an alias fixes (`update-all`: --all). INTERMIXED: options may come
    between the positionals. CHECK: a usage error in what was given together."""
    parser = CommandParser(prog=prog)
    argh.set_default_command(parser, function)
    declared = {name for spec in getattr(function, "argh_args", ()) for name in spec.cli_arg_names}
    for action in list(parser._actions):
        for option in list(action.option_strings):
            if len(option) == 2 and option != "-h" and option not in declared:
                action.option_strings.remove(option)
                del parser._option_string_actions[option]
    add_globals(parser, hidden=True)
    if defaults:
        parser.set_defaults(**defaults)
    parser.intermixed = intermixed
    parser.check = check
    return parser


def walk(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every command under PARSER with the words that reach it, hidden aliases included."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from walk(child, (*path, name))
    if isinstance(parser, CommandParser):
        for name, child in parser.subcommands.items():
            yield from walk(child, (*path, name))
