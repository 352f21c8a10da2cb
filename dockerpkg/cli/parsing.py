"""How the command line is parsed: verbs, the sub-commands of a verb (`plan update`), hidden
aliases for old spellings (`plan-update`), and help that says each default once.

A verb such as `plan` is both a command (`plan DIRECTORY`) and a group of others (`plan update
NAME DIRECTORY`). argparse gives a group real sub-commands (their own parsers, --help and
shell completion) but no default one, and a positional cannot come before the sub-command's
name. So `Commands`, the action that runs the parser a word names, gives a group its default
sub-command when the next word names none of the group's: the verb's own command, registered
under `DEFAULT`, a name no word on a command line can be (argv cannot hold NUL).
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

import argh

F = TypeVar("F", bound=Callable[..., Any])

# The name a group's default sub-command is registered under; hidden everywhere.
DEFAULT = "\0"

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
Route = Callable[[list[str]], str | None]


class CommandParser(argh.ArghParser):
    """The parser of one command or group: whether options may come between its
    positionals (`update NAME --reason TEXT DIRECTORY`), a check of what was given together
    (a usage error: its message), and for a group, which sub-command words name when their
    first names none (`apply PLAN.json` runs any saved plan: its action names one; None:
    the default)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)
        self.intermixed = False
        self.check: Check | None = None
        self.route: Route | None = None
        self.commands: Commands | None = None  # a group's sub-commands


class _Shown(Mapping[str, argparse.ArgumentParser]):
    """Every command by name, listing only those shown: argparse checks a word against it
    (an alias is found), its error message and shell completion list it (an alias is not)."""

    def __init__(self, parsers: dict[str, argparse.ArgumentParser], shown: list[str]) -> None:
        self._parsers, self._shown = parsers, shown

    def __getitem__(self, name: str) -> argparse.ArgumentParser:
        return self._parsers[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._shown)

    def __len__(self) -> int:
        return len(self._shown)


class Commands(argparse._SubParsersAction):  # type: ignore[type-arg]
    """The commands a word names (the verbs, or a group's sub-commands): runs the parser
    of the one named, with the group's default when the next word names none."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._shown: list[str] = []
        self.choices = _Shown(self._name_parser_map, self._shown)  # type: ignore[assignment]

    def register(self, name: str, parser: CommandParser, summary: str | None) -> None:
        """PARSER as the command NAME; listed in --help with SUMMARY, or hidden (an alias
        kept for an old spelling) without one."""
        if name in self._name_parser_map:
            raise ValueError(f"two commands called {name!r}")
        self._name_parser_map[name] = parser
        if summary is not None:
            self._shown.append(name)
            self._choices_actions.append(self._ChoicesPseudoAction(name, (), summary))

    def every(self) -> dict[str, argparse.ArgumentParser]:
        """Every command by name, hidden ones included."""
        return dict(self._name_parser_map)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        name, *words = values
        chosen = self._name_parser_map.get(name)
        if not isinstance(chosen, CommandParser):  # unknown: argparse's own message
            super().__call__(parser, namespace, values, option_string)
            return
        group = chosen.commands
        if group is not None:
            words = _sub_command_first(chosen, group, words)
        parse = chosen.parse_known_intermixed_args if chosen.intermixed else chosen.parse_known_args
        # A namespace of its own, copied over, as argparse does for its sub-commands.
        found, rest = parse(words, None)
        if chosen.check is not None and (problem := chosen.check(found)) is not None:
            chosen.error(problem)
        for key, value in vars(found).items():
            setattr(namespace, key, value)
        if rest:
            vars(namespace).setdefault(argparse._UNRECOGNIZED_ARGS_ATTR, []).extend(rest)


def _sub_command_first(chosen: CommandParser, group: Commands, words: list[str]) -> list[str]:
    """WORDS with the group's sub-command first: the one the first word after the global
    options names (they are taken anywhere, as before the verb), or the one ROUTE or the
    default gives. No word at all: the group's check says what is missing (and a shell
    completing the next word is offered the sub-commands' names)."""
    given = leading_globals(words)
    rest = words[given:]
    if not rest:
        return words
    if rest[0] in group.every():
        return [rest[0], *words[:given], *rest[1:]]
    routed = chosen.route(rest) if chosen.route is not None else None
    return [routed or DEFAULT, *words]


def leading_globals(words: list[str]) -> int:
    """How many of WORDS, from the first, are global options (-c CONFIG, -cCONFIG,
    --configfile CONFIG, --configfile=CONFIG, --debug, --info)."""
    at = 0
    while at < len(words):
        word = words[at]
        if word in ("-c", "--configfile"):
            at += 2
        elif word in ("--debug", "--info") or word.startswith(("--configfile=", "-c")):
            at += 1
        else:
            break
    return min(at, len(words))


def _paths(prefix: str, **kwargs: Any) -> list[str]:
    """Shell completion of a group's first word: the paths (the default's DIRECTORY or
    PLAN.json) besides the sub-commands' names."""
    from argcomplete.completers import FilesCompleter

    return list(FilesCompleter()(prefix, **kwargs))


def group(
    prog: str,
    default: CommandParser,
    children: dict[str, tuple[CommandParser, str]],
    route: Route | None = None,
) -> CommandParser:
    """The group PROG: DEFAULT when the next word names none of CHILDREN (name: parser and
    summary) or, with ROUTE, the child it names. DEFAULT's --help lists the children."""
    usage = f"{prog} [OPTION ...] ARGUMENT ...\n       {prog} {{{','.join(children)}}} ..."
    parser = CommandParser(prog=prog, add_help=False, usage=usage)
    commands = parser.add_subparsers(action=Commands, metavar="SUB-COMMAND")
    assert isinstance(commands, Commands)
    commands.register(DEFAULT, default, None)
    for name, (child, summary) in children.items():
        commands.register(name, child, summary)
    parser.commands, parser.route = commands, route
    # The default's options, for a shell completing `plan --off`: the words before the one
    # completed name no sub-command yet. Parsing never reads them here (Commands gives the
    # words to a sub-command, the default if none).
    for action in default._actions:
        if action.option_strings and action.help != argparse.SUPPRESS:
            parser._add_action(action)
    first = next(a for a in default._actions if not a.option_strings)
    needed = f"give {first.metavar or first.dest} (or a sub-command: {', '.join(children)})"
    parser.check = lambda found: None if hasattr(found, "function") else needed
    commands.completer = _paths  # type: ignore[attr-defined]  # besides the children's names
    width = max(len(name) for name in children)
    lines = [f"  {name:{width}}  {summary}" for name, (_, summary) in children.items()]
    default.epilog = f"sub-commands ({prog} NAME --help for each):\n" + "\n".join(lines) + "\n"
    return parser


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


Declaration = tuple[tuple[str, ...], dict[str, Any]]


def arg(*names: str, **how: Any) -> Declaration:
    """An @argh.arg declaration for `declared`, made anew on each command: argh's decorator
    takes `dest` out of what it was given, so one decorator can serve one command only."""
    return names, how


def declared(*declarations: Declaration) -> Callable[[F], F]:
    """One decorator for several @argh.arg declarations (see `arg`) that commands share, in
    the order they would have stacked (argh keeps the positionals in the order written)."""

    def declare(function: F) -> F:
        for names, how in reversed(declarations):
            function = argh.arg(*names, **how)(function)
        return function

    return declare


def command(
    function: Callable[..., Any],
    prog: str,
    *,
    defaults: dict[str, Any] | None = None,
    intermixed: bool = False,
    check: Check | None = None,
) -> CommandParser:
    """The parser of FUNCTION (its arguments as argh reads them from its signature and its
    @argh.arg declarations), with the option names declared. DEFAULTS: the values an alias
    fixes (`update-all`: --all). INTERMIXED: options may come between the positionals.
    CHECK: a usage error in what was given together."""
    parser = CommandParser(prog=prog)
    argh.set_default_command(parser, function)
    declared = {name for spec in getattr(function, "argh_args", ()) for name in spec.cli_arg_names}
    for action in list(parser._actions):
        _declared_names_only(parser, action, declared)
    add_globals(parser, hidden=True)
    if defaults:
        parser.set_defaults(**defaults)
    parser.intermixed = intermixed
    parser.check = check
    return parser


def _declared_names_only(
    parser: argparse.ArgumentParser, action: argparse.Action, declared: set[str]
) -> None:
    """ACTION with only its DECLARED names. argh also names an option after its parameter
    (`--json-output` beside `--json`) and its first letter, which let `-v` be a timeout
    here and a version there: the short ones go; the long ones, which worked, stay, hidden."""
    if "-h" in action.option_strings:
        return
    named = bool(declared & set(action.option_strings))  # else keep the long names as shown
    dropped = [o for o in action.option_strings if o not in declared and (named or len(o) == 2)]
    for option in dropped:
        del parser._option_string_actions[option]
    action.option_strings = [o for o in action.option_strings if o not in dropped]
    hidden = [o for o in dropped if o.startswith("--")]
    if hidden:
        twin = copy.copy(action)
        twin.option_strings, twin.help = hidden, argparse.SUPPRESS
        parser._add_action(twin)


def walk(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every parser under PARSER with the words that reach it (a group's default: the
    group's words), hidden aliases included."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, Commands):
            for name, child in action.every().items():
                yield from walk(child, path if name == DEFAULT else (*path, name))
