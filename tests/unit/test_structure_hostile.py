"""A hostile or wrong structure-tests file is a located error, never a traceback: huge
whole numbers, deep nesting, check names a pytest id could not carry, patterns Go refuses."""

from __future__ import annotations

import time

import pytest

from dockerpkg.core import structure_regex
from dockerpkg.core.structure import CommandSpec, FileExistenceSpec, MetadataSpec
from dockerpkg.core.structure_facts import ImageConfig, RunResult
from dockerpkg.core.structure_regex import GoPattern
from dockerpkg.core.structure_verdict import command_verdict, metadata_verdict
from dockerpkg.core.structure_yaml import parse_structure_tests
from dockerpkg.errors import DockerPkgError, Location

WHERE = "img/structure-tests.yaml"
HEAD = "schemaVersion: 2.0.0\n"


def _refused(text: str) -> tuple[int | None, str]:
    with pytest.raises(DockerPkgError) as raised:
        parse_structure_tests(text, WHERE)
    (problem,) = raised.value.problems
    assert problem.location.path == WHERE
    return problem.location.line, problem.message


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("exitCode", "9" * 5000),
        ("exitCode", "-" + "9" * 5000),
        ("exitCode", "9223372036854775808"),
        ("exitCode", "-9223372036854775809"),
        ("exitCode", "99999999999999999999"),
    ],
)
def test_command_numbers_beyond_go_int_are_refused(key: str, value: str) -> None:
    text = f"{HEAD}commandTests:\n  - name: a\n    command: ls\n    {key}: {value}\n"
    line, message = _refused(text)
    assert line == 5
    assert f"'{key}' is out of range" in message
    assert "-9223372036854775808 to 9223372036854775807" in message
    assert len(message) < 300


@pytest.mark.parametrize("key", ["uid", "gid"])
@pytest.mark.parametrize("value", ["1" * 4301, "18446744073709551616"])
def test_owner_numbers_beyond_go_int_are_refused(key: str, value: str) -> None:
    text = f"{HEAD}fileExistenceTests:\n  - name: a\n    path: /x\n    {key}: {value}\n"
    line, message = _refused(text)
    assert line == 5
    assert f"'{key}' is out of range" in message


def test_numbers_at_go_int_bounds_are_read() -> None:
    text = (
        f"{HEAD}commandTests:\n"
        "  - {name: a, command: ls, exitCode: 9223372036854775807}\n"
        "  - {name: b, command: ls, exitCode: -9223372036854775808}\n"
        "  - {name: c, command: ls, exitCode: +7}\n"
        "fileExistenceTests:\n"
        "  - {name: d, path: /x, uid: 9223372036854775807, gid: 0}\n"
    )
    checks = parse_structure_tests(text, WHERE).checks
    codes = [c.spec.exit_code for c in checks if isinstance(c.spec, CommandSpec)]
    assert codes == [2**63 - 1, -(2**63), 7]
    (owner,) = [c.spec for c in checks if isinstance(c.spec, FileExistenceSpec)]
    assert (owner.uid, owner.gid) == (2**63 - 1, 0)


@pytest.mark.parametrize("value", ["010", "09", "-01", "0" * 5000 + "7"])
def test_leading_zeros_are_refused(value: str) -> None:
    # yaml.v2, which container-structure-test reads with, takes 010 as octal.
    text = f"{HEAD}commandTests:\n  - name: a\n    command: ls\n    exitCode: {value}\n"
    line, message = _refused(text)
    assert line == 5
    assert "'exitCode' is written with a leading zero" in message
    assert len(message) < 300


@pytest.mark.parametrize(
    "text",
    [
        f"{HEAD}commandTests: " + "[" * 20000 + "]" * 20000 + "\n",
        f"{HEAD}commandTests:\n  - " + "{a: " * 20000 + "1" + "}" * 20000 + "\n",
        f"{HEAD}commandTests:\n" + "".join("  " * i + "- \n" for i in range(1, 200)),
        "[" * 20000,
    ],
)
def test_deep_nesting_is_refused_quickly(text: str) -> None:
    # Composing the first one whole took over two minutes and then ran out of stack; the
    # scanner reads about 1024 tokens ahead of the depth check, a bounded cost.
    started = time.monotonic()
    line, message = _refused(text)
    assert time.monotonic() - started < 10
    assert line is not None
    assert "nest more than 32 deep" in message


def test_nesting_a_file_needs_is_read() -> None:
    text = f"{HEAD}commandTests:\n  - name: a\n    command: ls\n    setup: [[sh, -c, 'true']]\n"
    (check,) = parse_structure_tests(text, WHERE).checks
    assert isinstance(check.spec, CommandSpec)
    assert check.spec.setup == (("sh", "-c", "true"),)


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ('"a::b"', "'::'"),
        ('"::"', "'::'"),
        ('"two\\nlines"', "U+000A"),
        ('"tab\\there"', "U+0009"),
        ('"bell\\a"', "U+0007"),
        ('"nul\\0"', "U+0000"),
        ('"esc\\e[31m"', "U+001B"),
        ('"del\\x7f"', "U+007F"),
        ('"next\\Nline"', "U+0085"),
        ('"line\\Lsep"', "U+2028"),
        ('"para\\Psep"', "U+2029"),
    ],
)
def test_check_names_a_test_id_cannot_carry_are_refused(name: str, shown: str) -> None:
    for section, field in (("commandTests", "command: ls"), ("fileContentTests", "path: /x")):
        text = f"{HEAD}{section}:\n  - {field}\n    name: {name}\n"
        line, message = _refused(text)
        assert line == 4, text
        assert "the check name" in message
        assert shown in message


def test_names_with_other_text_are_read() -> None:
    text = f"{HEAD}commandTests:\n  - {{name: 'a: b [c] / d \u00e9 \U0001f600', command: ls}}\n"
    (check,) = parse_structure_tests(text, WHERE).checks
    assert check.name == "a: b [c] / d \u00e9 \U0001f600"
    assert check.location == Location(WHERE, 3)


@pytest.mark.parametrize(
    "pattern",
    [r"\C", "(?P<\u00e9>a)", "a++", "(?=x)", "a{1001}", "(" * 1000 + ")" * 1000],
)
def test_patterns_go_refuses_are_located(pattern: str) -> None:
    text = f"{HEAD}fileContentTests:\n  - name: a\n    path: /x\n    expectedContents:\n"
    text += f"      - '{pattern}'\n"
    line, message = _refused(text)
    assert line == 6
    assert "bad pattern in 'expectedContents'" in message


def test_catastrophic_pattern_in_a_file_is_read_quickly() -> None:
    text = f"{HEAD}fileContentTests:\n  - {{name: a, path: /x, expectedContents: ['(a|aa)*c']}}\n"
    started = time.monotonic()
    (check,) = parse_structure_tests(text, WHERE).checks
    assert check.name == "a"
    assert time.monotonic() - started < 2


def test_aliased_heavy_patterns_compile_once_and_run_without_compiling(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # One heavy pattern (a third of a million RE2 instructions), repeated through a YAML
    # alias by 1,000 checks and by the metadata test: compiled once per file, not per use.
    heavy = r"\pL{300}"
    lines = [
        HEAD,
        "commandTests:\n",
        f"  - {{name: c0, command: ls, expectedOutput: [&p '{heavy}'], excludedError: [*p]}}\n",
    ]
    lines += [f"  - {{name: c{i}, command: ls, expectedOutput: [*p]}}\n" for i in range(1, 1000)]
    lines.append("metadataTest:\n  labels: [{key: k, value: *p, isRegex: true}]\n")
    started = time.monotonic()
    checks = parse_structure_tests("".join(lines), WHERE).checks
    # Compiled at each use, it took over 300 s; reading the YAML itself takes a second or so.
    assert time.monotonic() - started < 15
    assert len(checks) == 1001
    used = [
        pattern
        for check in checks
        if isinstance(check.spec, CommandSpec)
        for pattern in (*check.spec.expected_output, *check.spec.excluded_error)
    ]
    metadata = checks[-1].spec
    assert isinstance(metadata, MetadataSpec)
    used.append(metadata.labels[0].value)
    assert len(used) == 1002
    assert all(pattern is used[0] for pattern in used)  # one compiled pattern, shared
    assert isinstance(used[0], GoPattern)
    assert used[0] == heavy  # still the pattern as written
    # Running the checks compiles nothing again.
    monkeypatch.setattr(structure_regex, "compile_go", _no_compile)
    spec = checks[0].spec
    assert isinstance(spec, CommandSpec)
    assert command_verdict(spec, RunResult(0, "a" * 300, "")).passed
    assert metadata_verdict(metadata, _config({"k": "é" * 300})).passed


def _config(labels: dict[str, str]) -> ImageConfig:
    return ImageConfig(
        env={},
        labels=labels,
        user="",
        entrypoint=None,
        cmd=None,
        workdir="",
        exposed_ports=(),
        volumes=(),
        architecture="amd64",
    )


def _no_compile(pattern: str) -> GoPattern:
    raise AssertionError(f"compiled again: {pattern}")


def test_a_file_whose_patterns_cost_too_much_is_refused_where_it_crosses_the_line() -> None:
    # Four different patterns of about 1.2 million instructions each: the fourth is over
    # the file's budget (4 million); a file of thousands of them is refused as soon, after
    # about 5 s of compiling at most.
    lines = [HEAD, "fileContentTests:\n"]
    lines += [
        f"  - {{name: f{i}, path: /x, expectedContents: ['\\pL{{{1000 - i}}}']}}\n"
        for i in range(100)
    ]
    started = time.monotonic()
    line, message = _refused("".join(lines))
    assert time.monotonic() - started < 30
    assert line == 6  # the fourth check's pattern
    assert "compile to more than 4,000,000 instructions in all" in message
    assert "'expectedContents'" in message


def test_a_file_with_too_many_different_patterns_is_refused() -> None:
    lines = [HEAD, "fileContentTests:\n  - name: f\n    path: /x\n    expectedContents:\n"]
    lines += [f"      - 'p{i}'\n" for i in range(10_001)]
    line, message = _refused("".join(lines))
    assert line == 6 + 10_000
    assert "more than 10000 different patterns in one file" in message
