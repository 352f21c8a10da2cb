"""Go regular expressions (RE2 syntax, as container-structure-test matches them) run with
Python's `re`: a pattern is rewritten where the two read the same text differently, and
refused where Go would refuse it or Python cannot say the same. A pattern passes when it
matches anywhere in the text (Go's MatchString)."""

from __future__ import annotations

import re

import attrs

# Go's \s is these five only (Python's adds \v).
_SPACE = r"\t\n\f\r "

_POSIX_CLASSES = {
    "alnum": "0-9A-Za-z",
    "alpha": "A-Za-z",
    "ascii": r"\x00-\x7f",
    "blank": r"\t ",
    "cntrl": r"\x00-\x1f\x7f",
    "digit": "0-9",
    "graph": r"!-~",
    "lower": "a-z",
    "print": r" -~",
    "punct": r"!-/:-@\[-`{-~",
    "space": r"\t\n\v\f\r ",
    "upper": "A-Z",
    "word": "0-9A-Za-z_",
    "xdigit": "0-9A-Fa-f",
}

# Group openings Go's syntax has not: look-arounds, atomic groups, comments,
# back-references by name.
_NOT_GO = ("(?=", "(?!", "(?<=", "(?<!", "(?>", "(?#", "(?P=")
_FLAGS = re.compile(r"\(\?([a-zA-Z-]*)[:)]")
_REPEAT_END = re.compile(r"\{[0-9]+(,[0-9]*)?$")


class GoRegexError(ValueError):
    """A pattern Go would refuse, or whose meaning Python's `re` cannot give."""


@attrs.frozen
class _Scan:
    pattern: str
    multiline: bool


def compile_go(pattern: str) -> re.Pattern[str]:
    """PATTERN compiled with Go's meaning; GoRegexError says why it cannot be."""
    multiline = re.search(r"\(\?[a-zA-Z]*m", pattern) is not None
    try:
        return re.compile(_translate(_Scan(pattern, multiline)), re.ASCII)
    except re.error as exc:
        raise GoRegexError(str(exc)) from None


def go_match(pattern: str, text: str) -> bool:
    """Whether PATTERN (a valid Go pattern) matches anywhere in TEXT."""
    return compile_go(pattern).search(text) is not None


def _translate(scan: _Scan) -> str:
    pattern = scan.pattern
    out: list[str] = []
    index = 0
    in_class = False
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern):
            text, index = _escape(pattern, index, in_class)
            out.append(text)
            continue
        if in_class:
            if char == "[" and pattern.startswith("[:", index):
                text, index = _posix_class(pattern, index)
                out.append(text)
                continue
            if char == "]":
                in_class = False
        elif char == "(":
            _check_group(pattern, index)
        elif char in "*+?}" and pattern.startswith("+", index + 1):
            _check_possessive(pattern, index)
        elif char == "[":
            in_class = True
            out.append(char)
            index += 1
            # A `]` first in a class (after an optional `^`) is a literal in both syntaxes.
            if pattern.startswith("^", index):
                out.append("^")
                index += 1
            if pattern.startswith("]", index):
                out.append(r"\]")
                index += 1
            continue
        elif char == "$" and not scan.multiline:
            # Go's `$` is the end of the text; Python's also matches before a final newline.
            char = r"\Z"
        out.append(char)
        index += 1
    return "".join(out)


def _check_group(pattern: str, index: int) -> None:
    """Refuse a group opening at INDEX that Go refuses (or reads otherwise)."""
    for opening in _NOT_GO:
        if pattern.startswith(opening, index):
            raise GoRegexError(f"'{opening}' is not in Go's regular expression syntax")
    if pattern.startswith("(?<", index):
        raise GoRegexError("a named group is written (?P<name>...)")
    flags = _FLAGS.match(pattern, index)
    if flags is not None and set(flags.group(1)) - set("ims-"):
        raise GoRegexError(f"flags '{flags.group(1)}': dockerpkg reads i, m and s only")


def _check_possessive(pattern: str, index: int) -> None:
    """A repetition of a repetition (Python's possessive `a++`) is an error in Go."""
    if pattern[index] != "}" or _REPEAT_END.search(pattern, 0, index):
        raise GoRegexError(f"'{pattern[index : index + 2]}' repeats a repetition, which Go refuses")


def _escape(pattern: str, index: int, in_class: bool) -> tuple[str, int]:
    """The Python form of the escape at INDEX and the index after it."""
    letter = pattern[index + 1]
    after = index + 2
    if letter == "Q":
        end = pattern.find(r"\E", after)
        literal = pattern[after:] if end < 0 else pattern[after:end]
        return re.escape(literal), len(pattern) if end < 0 else end + 2
    if letter == "z":
        return r"\Z", after
    if letter == "s":
        return (_SPACE if in_class else f"[{_SPACE}]"), after
    if letter == "S" and not in_class:
        return f"[^{_SPACE}]", after
    if letter in "ZpP" or (letter.isdigit() and letter != "0"):
        raise GoRegexError(f"'\\{letter}' is not an escape dockerpkg reads in Go's syntax")
    return pattern[index:after], after


def _posix_class(pattern: str, index: int) -> tuple[str, int]:
    """`[:name:]` (or `[:^name:]`) inside a class, as ranges."""
    end = pattern.find(":]", index + 2)
    if end < 0:
        return "\\[", index + 1
    name = pattern[index + 2 : end]
    negated = name.startswith("^")
    ranges = _POSIX_CLASSES.get(name.lstrip("^"))
    if ranges is None:
        raise GoRegexError(f"unknown character class '[:{name}:]'")
    if negated:
        raise GoRegexError(f"'[:{name}:]' is not supported by dockerpkg")
    return ranges, end + 2
