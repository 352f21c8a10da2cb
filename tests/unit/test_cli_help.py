"""The command line as users meet it: every command's --help says what each flag does and its
default once; no short flag means two things along one command line; `dockerpkg --help`
lists each verb once; each old spelling of a pseudo-verb (`plan-update`, `update-all`, ...)
still works, hidden, as the sub-command or option that replaced it; --version; completion."""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockerpkg.cli import main
from dockerpkg.cli.common import Context
from dockerpkg.cli.main import make_parser
from dockerpkg.cli.parsing import DEFAULT, CommandParser, Commands
from tests.support.compat import COMPAT

Chain = tuple[argparse.ArgumentParser, ...]


def chains(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = (), chain: Chain = ()
) -> Iterator[tuple[tuple[str, ...], Chain]]:
    """Every command a user can run, with the words that reach it and the parsers those
    words go through (global options, verb, sub-command), hidden aliases included."""
    chain = (*chain, parser)
    commands = [a for a in parser._actions if isinstance(a, Commands)]
    if not commands:
        yield path, chain
    for action in commands:
        for name, child in action.every().items():
            yield from chains(child, path if name == DEFAULT else (*path, name), chain)


PARSER = make_parser(Context(config_path=None, env={}, now=datetime.datetime(2026, 12, 7)))
COMMANDS = dict(chains(PARSER))
PATHS = sorted(COMMANDS)


def shown(parser: argparse.ArgumentParser) -> list[str]:
    """The names PARSER's --help lists under its verbs (or sub-commands)."""
    return [
        choice.dest
        for action in parser._actions
        if isinstance(action, Commands)
        for choice in action._get_subactions()
    ]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        status = main(list(args))
    except SystemExit as exit_:
        status = exit_.code if isinstance(exit_.code, int) else 1
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize("path", PATHS, ids=[" ".join(p) for p in PATHS])
def test_every_help_line_says_what_and_its_default_once(
    path: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = run(capsys, *path, "--help")
    assert status == 0
    assert out.startswith(f"usage: dockerpkg {' '.join(path)}".rstrip())
    for parser in COMMANDS[path]:
        formatter = parser._get_formatter()
        for action in parser._actions:
            if not action.option_strings or action.help == argparse.SUPPRESS:
                continue
            text = formatter._expand_help(action)  # what --help prints for it
            assert text.strip(), action.option_strings
            assert text.strip() not in {"False", "True", "-", "None"}, action.option_strings
            assert text.count("(default:") <= 1, (action.option_strings, text)
            assert "(default: -)" not in text, text
            assert "(default: None)" not in text, text
    assert not re.search(r"\s(False|True)$", out, re.MULTILINE)


@pytest.mark.parametrize("path", PATHS, ids=[" ".join(p) for p in PATHS])
def test_no_short_flag_means_two_things_along_one_command_line(path: tuple[str, ...]) -> None:
    meanings: dict[str, set[str]] = {}
    for parser in COMMANDS[path]:
        for action in parser._actions:
            for option in action.option_strings:
                if not option.startswith("--"):
                    meanings.setdefault(option, set()).add(action.dest)
    assert {flag: dests for flag, dests in meanings.items() if len(dests) > 1} == {}


# Every short flag, command by command (beside -h and the global -c); docs/cli.md lists them.
SHORTS = {
    ("plan",): {"-j": "json_output", "-u": "use_cache", "-d": "detailed_exitcode",
                "-p": "publish", "-e": "engine"},
    ("apply",): {"-u": "use_cache", "-j": "jobs", "-q": "quiet", "-w": "wait_lock",
                 "-p": "publish", "-e": "engine"},
    ("build",): {"-u": "use_cache", "-j": "jobs", "-q": "quiet", "-w": "wait_lock",
                 "-p": "publish", "-e": "engine"},
    ("diff",): {"-j": "json_output"},
    ("update",): {"-r": "reason", "-v": "version", "-s": "select", "-j": "json_output",
                  "-w": "wait_lock"},
    ("plan", "update"): {"-r": "reason", "-v": "version", "-s": "select", "-j": "json_output",
                         "-o": "out", "-d": "detailed_exitcode"},
    ("apply", "update"): {"-r": "reason", "-v": "version", "-w": "wait_lock"},
    ("prune",): {"-s": "select", "-n": "nightly", "-j": "json_output", "-w": "wait_lock"},
    ("plan", "prune"): {"-s": "select", "-n": "nightly", "-j": "json_output", "-o": "out",
                        "-d": "detailed_exitcode"},
    ("apply", "prune"): {"-s": "select", "-n": "nightly", "-w": "wait_lock"},
    ("refs",): {"-j": "json_output", "-d": "detailed_exitcode", "-a": "apply_edits"},
    ("plan", "refs"): {"-d": "detailed_exitcode"},
    ("apply", "refs"): {},
    ("graph",): {"-f": "fmt", "-s": "select", "-o": "out"},
    ("lint",): {"-j": "json_output", "-e": "extend_select", "-i": "ignore", "-l": "list_rules"},
}  # fmt: skip


@pytest.mark.parametrize("path", sorted(SHORTS), ids=[" ".join(p) for p in sorted(SHORTS)])
def test_the_short_flags_are_the_declared_ones(path: tuple[str, ...]) -> None:
    leaf = COMMANDS[path][-1]
    found = {
        option: action.dest
        for action in leaf._actions
        for option in action.option_strings
        if not option.startswith("--") and option not in {"-h", "-c"}
    }
    assert found == SHORTS[path]


def test_help_lists_each_verb_once_and_no_alias(capsys: pytest.CaptureFixture[str]) -> None:
    verbs = ["plan", "apply", "build", "update", "prune", "refs", "diff", "graph", "lint"]
    assert shown(PARSER) == verbs
    status, out, _ = run(capsys, "--help")
    assert status == 0
    listed = re.findall(r"^    (\S+)\s", out, re.MULTILINE)
    assert listed == verbs
    assert "update-all" not in out
    assert "plan-update" not in out
    for group in ("plan", "apply"):
        assert shown(COMMANDS[(group,)][1]) == ["update", "prune", "refs"]
        status, out, _ = run(capsys, group, "--help")
        assert status == 0
        assert re.findall(r"^  (update|prune|refs)  ", out, re.MULTILINE) == [
            "update",
            "prune",
            "refs",
        ]


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "--version")
    assert status == 0
    assert out == f"dockerpkg {importlib.metadata.version('dockerpkg')}\n"


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of a compat tree, as the current folder, with a file that uses its images."""
    shutil.copytree(COMPAT / "11-versions", tmp_path / "case")
    monkeypatch.chdir(tmp_path / "case")
    monkeypatch.setenv("DEBFULLNAME", "Release Bot")
    monkeypatch.setenv("DEBEMAIL", "bot@example.org")
    # Nothing to reach: prune's daemon and the registry of --changed-bases fail at once.
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-daemon.sock")
    config = Path("config.yaml")
    config.write_text(config.read_text().replace("registry.example.org", "127.0.0.1:9"))
    Path("deploy.yaml").write_text("image: 127.0.0.1:9/leaf:4\n")
    return tmp_path / "case"


def _saved_update(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "plan", "update", "leaf", "--out", "u.json", "images")[0] == 0


def _saved_refs(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "plan", "refs", "--out", "r.json", "images", "deploy.yaml")[0] == 0


def _interrupted(capsys: pytest.CaptureFixture[str]) -> None:
    """Nothing: --resume and --discard say there is no interrupted update (the tests of
    recovery are in test_update_recovery.py)."""


# Each spelling made by rewriting argv before there were sub-commands, the one that
# replaced it, and what the run needs first.
ALIASES = [
    (("plan-update", "leaf", "images"), ("plan", "update", "leaf", "images"), None),
    (("plan-update-all", "images"), ("plan", "update", "--all", "images"), None),
    (
        ("plan-update-changed-bases", "images"),
        ("plan", "update", "--changed-bases", "images"),
        None,
    ),
    (("apply-update", "u.json"), ("apply", "update", "u.json"), _saved_update),
    (("update-all", "images"), ("update", "--all", "images"), None),
    (("update-changed-bases", "images"), ("update", "--changed-bases", "images"), None),
    (("update-resume", "images"), ("update", "--resume", "images"), _interrupted),
    (("update-discard", "images"), ("update", "--discard", "images"), _interrupted),
    (("plan-prune", "images"), ("plan", "prune", "images"), None),
    (("apply-prune", "images"), ("apply", "prune", "images"), None),
    (("plan-refs", "images", "deploy.yaml"), ("plan", "refs", "images", "deploy.yaml"), None),
    (
        ("apply-refs", "r.json", "deploy.yaml"),
        ("apply", "refs", "r.json", "deploy.yaml"),
        _saved_refs,
    ),
    # Not an alias: a saved plan of any verb runs with `apply PLAN.json`.
    (("apply", "u.json"), ("apply", "update", "u.json"), _saved_update),
    (("apply", "r.json", "deploy.yaml"), ("apply", "refs", "r.json", "deploy.yaml"), _saved_refs),
]
_DATE = re.compile(r"\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}")


def _files(root: Path) -> dict[str, str]:
    found = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix != ".json":
            found[str(path.relative_to(root))] = _DATE.sub("DATE", path.read_text("utf-8"))
    return found


def test_every_hidden_alias_is_tested() -> None:
    hidden = {p[0] for p in PATHS if len(p) == 1} - set(shown(PARSER))
    assert hidden == {old[0] for old, _, _ in ALIASES if old[0] != "apply"}


@pytest.mark.parametrize(("old", "new", "before"), ALIASES, ids=[" ".join(a[0]) for a in ALIASES])
def test_old_spelling_does_what_the_new_one_does(
    old: tuple[str, ...],
    new: tuple[str, ...],
    before: object,
    tree: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    results = []
    pristine = tree.parent / "pristine"
    shutil.copytree(tree, pristine)
    for args in (old, new):
        shutil.rmtree(tree)
        shutil.copytree(pristine, tree)
        monkeypatch.chdir(tree)
        if callable(before):
            before(capsys)
        status, out, err = run(capsys, *args)
        results.append((status, _DATE.sub("DATE", out), _DATE.sub("DATE", err), _files(tree)))
    assert results[0] == results[1]
    # And the run did something to compare: wrote, showed, or refused naming what it needs.
    status, out, err, files = results[1]
    assert out or err
    if status == 0 and new[0] in {"update", "apply"} and not {"--resume", "--discard"} & set(new):
        assert files != _files(pristine)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("update", "--all", "--resume", "images"), "--all and --resume exclude each other"),
        (("update", "--all", "leaf", "images"), "--all takes DIRECTORY alone, not NAME (leaf)"),
        (("update", "leaf"), "NAME and DIRECTORY are required"),
        (("update", "leaf", "images", "--select", "*"), "--select does not go with NAME"),
        (("update", "--resume", "images", "--reason", "x"), "--reason does not go with --resume"),
        (("update", "--changed-bases", "images", "-v", "2"), "--version does not go with"),
        (("plan", "update", "--changed-bases", "x", "images"), "--changed-bases takes DIRECTORY"),
        (("plan",), "give DIRECTORY (or a sub-command: update, prune, refs)"),
        (("apply",), "give PLAN.json|DIRECTORY"),
        (("build", "--cache", "registry", "-t", "3", "images"), "unrecognized arguments: -t"),
    ],
)
def test_usage_errors(
    args: tuple[str, ...], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _out, err = run(capsys, *args)
    assert status == 2
    assert message in err


def test_names_argh_made_still_work_hidden(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # argh named options after their parameters too (`--fmt` beside `--format`).
    assert run(capsys, "graph", "--fmt", "mermaid", "images") == run(
        capsys, "graph", "--format", "mermaid", "images"
    )
    assert run(capsys, "lint", "--json-output", "images") == run(capsys, "lint", "-j", "images")
    status, out, _ = run(capsys, "graph", "--help")
    assert status == 0
    assert "--fmt" not in out


def test_global_options_after_the_verb_as_before_it(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = run(capsys, "-c", "missing.yaml", "plan", "--offline", "images")
    after = run(capsys, "plan", "--offline", "images", "-c", "missing.yaml")
    assert before == after
    assert before[0] == 1
    assert "missing.yaml" in before[2]
    assert run(capsys, "plan", "--offline", "images", "--info")[0] == 0


def _completions(line: str, tmp_path: Path) -> list[str]:
    """What a shell completing LINE at its end is offered (argcomplete's protocol)."""
    out = tmp_path / "completions"
    env = {
        **os.environ,
        "_ARGCOMPLETE": "1",
        "_ARGCOMPLETE_IFS": "\n",
        "_ARGCOMPLETE_STDOUT_FILENAME": str(out),
        "COMP_LINE": line,
        "COMP_POINT": str(len(line)),
    }
    subprocess.run(
        [sys.executable, "-m", "dockerpkg"], env=env, cwd=tmp_path, check=True, timeout=60
    )
    return out.read_text().split()


def test_shell_completion(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    assert _completions("dockerpkg pl", tmp_path) == ["plan"]  # no hidden alias
    assert _completions("dockerpkg plan --offl", tmp_path) == ["--offline"]
    assert set(_completions("dockerpkg plan ", tmp_path)) >= {"update", "prune", "refs"}
    assert _completions("dockerpkg plan update --chan", tmp_path) == ["--changed-bases"]
    assert _completions("dockerpkg update --al", tmp_path) == ["--all"]
    assert _completions("dockerpkg apply refs --he", tmp_path) == ["--help"]


def test_command_parsers_are_command_parsers() -> None:
    # Each command's parser carries the check and the parsing mode Commands reads.
    assert all(isinstance(chain[-1], CommandParser) for chain in COMMANDS.values())
