"""A hostile or wrong structure-tests file is a located error, never a traceback: huge
whole numbers, deep nesting, check names a pytest id could not carry, patterns Go refuses."""

from __future__ import annotations

import time

import pytest

from dockerpkg.core.structure import CommandSpec, FileExistenceSpec
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
