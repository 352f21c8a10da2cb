"""Go's regular expressions as container-structure-test matches them: RE2's matches, Go's
verdicts where the RE2 library reads a pattern otherwise, the patterns Go refuses, and time
linear in the text for patterns that make a backtracking engine take exponential time."""

from __future__ import annotations

import time

import pytest

from dockerpkg.core.structure_regex import GoRegexError, compile_go, go_match


@pytest.mark.parametrize(
    ("pattern", "text", "matches"),
    [
        # `$` is the end of the text (not before a final newline) unless (?m).
        ("hi$", "hi\n", False),
        ("hi$", "hi", True),
        ("(?m)hi$", "hi\nthere", True),
        (r"a\z", "a", True),
        (r"a\z", "a\n", False),
        # `{,2}` is no repetition in Go: the four characters themselves.
        ("^a{,2}$", "", False),
        ("^a{,2}$", "aa", False),
        ("^a{,2}$", "a{,2}", True),
        (r"^\x{41}$", "A", True),
        (r"\x41", "A", True),
        (r"\x{1F600}", "\U0001f600", True),
        (r"(?i)HELLO", "hello", True),
        ("(?i:A)b", "ab", True),
        ("(?i:A)b", "aB", False),
        ("(?i)k", "\u212a", True),
        ("(?s)a.b", "a\nb", True),
        ("a.b", "a\nb", False),
        ("^.$", "\u00e9", True),
        (r"^\s$", "\v", False),
        (r"^\s$", "\t", True),
        (r"\d", "\u0663", False),
        (r"\pN", "\u0663", True),
        (r"\p{Greek}", "\u03b1", True),
        (r"[[:digit:]]+x", "12x", True),
        (r"[[:^alpha:]]", "1", True),
        (r"[]a]", "]", True),
        (r"\Qa.b\E", "a.b", True),
        (r"\Qa.b\E", "axb", False),
        (r"\Q\C\E", "\\C", True),
        ("w.rld", "world", True),
        (r"\(?=", "=", True),
        (r"[(?=]+", "?=", True),
        (r"\++", "++", True),
        ("(?P<x>a)b", "ab", True),
        ("(?<x>a)b", "ab", True),
        ("(?U)a+", "a", True),
        ("a{2}b+", "aab", True),
        ("(a{10}){10}", "a" * 100, True),
        (r"\pL{1000}", "a" * 999, False),
    ],
)
def test_go_patterns(pattern: str, text: str, matches: bool) -> None:
    assert go_match(pattern, text) is matches


@pytest.mark.parametrize(
    "pattern",
    [
        "(?=a)",
        "a(?<!b)",
        "(?>a)",
        r"(a)\1",
        "(?P<x>a)(?P=x)",
        "(?P<\u00e9>a)",
        "(?<a-b>a)",
        "(?#note)a",
        "(?x)a b",
        "a++",
        "a{2}+",
        "a**",
        "a{1001}",
        "(a{100}){20}",
        r"\Z",
        r"\C",
        r"[\C]",
        "(",
        "a)",
        "[[:nope:]]",
        "x{2,1}",
        "(" * 1000 + ")" * 1000,
        "\udc80",
    ],
)
def test_patterns_go_refuses(pattern: str) -> None:
    with pytest.raises(GoRegexError):
        compile_go(pattern)


def test_deep_groups_go_takes() -> None:
    assert go_match("(" * 998 + "a" + ")" * 998, "a")


@pytest.mark.parametrize(
    ("pattern", "text"),
    [
        ("(a|aa)*c", "a" * 5000),
        ("(a*)*b", "a" * 5000),
        ("(x+x+)+y", "x" * 5000),
        ("^(a|a?)+$", "a" * 5000 + "b"),
        (r"^(\w+\s?)*$", "a" * 5000 + "!"),
    ],
)
def test_catastrophic_patterns_end_quickly(pattern: str, text: str) -> None:
    # A backtracking engine takes years on these; RE2 takes milliseconds.
    started = time.monotonic()
    assert not go_match(pattern, text)
    assert time.monotonic() - started < 2
