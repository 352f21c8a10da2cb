"""Go regular expressions, as container-structure-test matches them, run by RE2: the engine
Go's regexp package follows (same syntax, same matches, `$` the end of the text unless `(?m)`)
and that takes time linear in the text whatever the pattern, so a hostile pattern cannot hang
a run. The few patterns the RE2 library takes and Go refuses are refused here first. A
pattern passes when it matches anywhere in the text (Go's MatchString)."""

from __future__ import annotations

from typing import Any

import re2

# Go refuses a parse tree higher than 1000; groups nested this deep are that high at least.
_MAX_GROUP_DEPTH = 1000
# Room for Go's own size limit (about 3 million instructions): RE2's default of 8 MiB
# refuses `\pL{1000}`, which Go takes.
_MAX_MEMORY = 64 << 20
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


class GoRegexError(ValueError):
    """A pattern Go would refuse."""


class GoPattern(str):
    """A pattern Go takes, compiled once. It is the pattern's text (so the checks holding it
    compare, print and pickle as text) and keeps its compiled form, so running a check does
    not compile it again. Immutable, as the str it is."""

    _compiled: re2._Regexp[str]

    def __new__(cls, pattern: str, compiled: re2._Regexp[str]) -> GoPattern:
        made = super().__new__(cls, pattern)
        object.__setattr__(made, "_compiled", compiled)
        return made

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"a GoPattern is immutable: cannot set {name}")

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return compile_go, (str(self),)

    @property
    def pattern(self) -> str:
        return str(self)

    @property
    def cost(self) -> int:
        """Its size as RE2 compiled it (instructions): what compiling it took, about."""
        return int(self._compiled.programsize)

    def matches(self, text: str) -> bool:
        """Whether the pattern matches anywhere in TEXT."""
        return self._compiled.search(text) is not None


def compile_go(pattern: str) -> GoPattern:
    """PATTERN compiled with Go's meaning; GoRegexError says why Go would refuse it."""
    _refuse_what_go_refuses(pattern)
    options = re2.Options()
    options.log_errors = False
    options.max_mem = _MAX_MEMORY
    try:
        return GoPattern(pattern, re2.compile(pattern, options))
    except re2.error as exc:
        reason = exc.args[0] if exc.args else ""
        text = reason.decode("utf-8", "replace") if isinstance(reason, bytes) else str(reason)
        raise GoRegexError(text or "not a valid pattern") from None
    except UnicodeEncodeError:
        raise GoRegexError("it holds a lone surrogate, which is not text") from None


def go_match(pattern: str, text: str) -> bool:
    """Whether PATTERN (a valid Go pattern) matches anywhere in TEXT; a GoPattern (as the
    checks parse_structure_tests reads hold) is not compiled again."""
    compiled = pattern if isinstance(pattern, GoPattern) else compile_go(pattern)
    return compiled.matches(text)


def _refuse_what_go_refuses(pattern: str) -> None:
    """Refuse `\\C` (any byte: RE2 has it, Go not), group names other than ASCII letters,
    digits and `_` (RE2 takes any letter), and groups nested as deep as Go refuses."""
    depth = 0
    index = 0
    in_class = False
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            index = _after_escape(pattern, index)
            continue
        if in_class:
            if pattern.startswith("[:", index):
                end = pattern.find(":]", index + 2)
                index = index + 1 if end < 0 else end + 2
                continue
            in_class = char != "]"
        elif char == "[":
            in_class = True
            # A `]` first in a class (after an optional `^`) is a literal.
            index += 2 if pattern.startswith("^", index + 1) else 1
            if pattern.startswith("]", index):
                index += 1
            continue
        elif char == "(":
            depth += 1
            if depth >= _MAX_GROUP_DEPTH:
                raise GoRegexError(f"groups nest {_MAX_GROUP_DEPTH} deep, which Go refuses")
            _check_group_name(pattern, index)
        elif char == ")":
            depth = max(depth - 1, 0)
        index += 1


def _after_escape(pattern: str, index: int) -> int:
    """The index after the escape at INDEX; `\\Q...\\E` is one escape."""
    letter = pattern[index + 1 : index + 2]
    if letter == "C":
        raise GoRegexError("'\\C' (any byte) is not in Go's syntax")
    if letter == "Q":
        end = pattern.find("\\E", index + 2)
        return len(pattern) if end < 0 else end + 2
    return index + 2


def _check_group_name(pattern: str, index: int) -> None:
    for opening in ("(?P<", "(?<"):
        if pattern.startswith(opening, index):
            start = index + len(opening)
            end = pattern.find(">", start)
            # Look-behinds and unclosed names are RE2's to refuse, with its own words.
            name = pattern[start:end]
            if end >= 0 and name[:1] not in ("=", "!") and not set(name) <= _NAME_CHARS:
                raise GoRegexError(
                    f"group name '{name}': Go takes ASCII letters, digits and '_' only"
                )
