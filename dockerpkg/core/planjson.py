"""Limits and checks for plan files read back (`apply PLAN.json`, `apply refs REFS.json`): a plan
may come from anyone (a CI artifact, a merge request), so a hostile one must end in an error
naming the file, never in a traceback, a deep recursion or the whole of a huge file in memory.

- size: at most MAX_PLAN_BYTES (the reader checks before reading; see effects/planfiles);
- depth: JSON nested at most MAX_DEPTH arrays and objects (a plan needs 4);
- types: every field of the values built from it has the type its class declares
  (`checked`, driven by the classes' annotations, so a new field is checked too).
"""

from __future__ import annotations

import functools
import json
import re
import types
import typing
from collections.abc import Mapping

import attrs

from dockerpkg.errors import DockerPkgError

# 32 MiB: a plan of 10,000 images with their Dockerfiles is about 30 times smaller.
MAX_PLAN_BYTES = 32 * 1024 * 1024
MAX_DEPTH = 32
# What changes the nesting depth, with strings skipped whole (a bracket inside one does not);
# a string never closed runs to the end in one match (scanning on from each of its quotes
# again would make a hostile file quadratic).
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"?|[\[\]{}]', re.DOTALL)


def too_large(size: int, path: str) -> DockerPkgError | None:
    """The error for a plan file of SIZE bytes at PATH, if it is over the limit."""
    if size <= MAX_PLAN_BYTES:
        return None
    return DockerPkgError.single(
        path,
        f"a plan file of {size} bytes: over the limit of {MAX_PLAN_BYTES} bytes "
        f"({MAX_PLAN_BYTES // (1024 * 1024)} MiB); not a plan dockerpkg made",
    )


def depth_of(text: str) -> int:
    """How deeply TEXT (JSON) nests arrays and objects: one pass, no recursion."""
    depth = deepest = 0
    for match in _TOKEN.finditer(text):
        found = match[0]
        if found in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif found in "]}":
            depth -= 1
    return deepest


def loads(text: str, path: str, what: str = "dockerpkg plan") -> object:
    """TEXT (the file at PATH) as JSON, refused past MAX_DEPTH or when it does not read."""
    if depth_of(text) > MAX_DEPTH:
        raise DockerPkgError.single(
            path, f"not a {what}: JSON nested deeper than {MAX_DEPTH} levels"
        )
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise DockerPkgError.single(path, f"not a {what}: {exc}") from None


_T = typing.TypeVar("_T")


class TypeMismatchError(ValueError):
    """A value of a plan does not have its declared type; the message says where."""


def checked(value: _T) -> _T:
    """VALUE (an attrs instance read from a plan), after checking every field against the
    type its class declares, recursively; raises TypeMismatchError naming the first wrong field."""
    _check(value, type(value), "")
    return value


def with_directory(value: _T) -> _T:
    """VALUE (a plan read back), after checking it names its tree's folder."""
    if not getattr(value, "directory", None):
        raise TypeMismatchError("directory: expected the tree's folder, not an empty string")
    return value


@functools.cache
def _hints(cls: type) -> dict[str, object]:
    return typing.get_type_hints(cls)


def _check(value: object, expected: object, where: str) -> None:
    origin = typing.get_origin(expected)
    if origin in (typing.Union, types.UnionType):
        _check_union(value, typing.get_args(expected), where)
    elif origin is tuple:
        if not isinstance(value, tuple):
            raise _wrong(where, "a list", value)
        for index, item in enumerate(value):
            _check(item, typing.get_args(expected)[0], f"{where}[{index}]")
    elif origin is Mapping or origin is dict:
        key_type, item_type = typing.get_args(expected)
        if not isinstance(value, Mapping):
            raise _wrong(where, "an object", value)
        for key, item in value.items():
            _check(key, key_type, f"{where}.{key}")
            _check(item, item_type, f"{where}.{key}")
    elif isinstance(expected, type) and attrs.has(expected):
        if not isinstance(value, expected):
            raise _wrong(where, "an object", value)
        for name, hint in _hints(expected).items():
            _check(getattr(value, name), hint, f"{where}.{name}" if where else name)
    else:
        _check_plain(value, expected, where)


def _check_union(value: object, options: tuple[object, ...], where: str) -> None:
    failed = []
    for option in options:
        try:
            _check(value, option, where)
        except TypeMismatchError as exc:
            failed.append((option, exc))
        else:
            return
    # A list, object or string that fits an option's shape is wrong inside: that option's
    # error says where (or that the string holds a NUL). Anything else: every option named.
    for option, error in failed:
        if _shaped(value, option):
            raise error
    raise _wrong(where, " or ".join(_described(option) for option in options), value)


def _shaped(value: object, option: object) -> bool:
    if option is str:
        return isinstance(value, str)
    origin = typing.get_origin(option)
    if origin is tuple:
        return isinstance(value, tuple)
    if origin is Mapping or origin is dict:
        return isinstance(value, Mapping)
    return isinstance(option, type) and attrs.has(option) and isinstance(value, option)


def _described(option: object) -> str:
    """OPTION of a union as an error names it."""
    origin = typing.get_origin(option)
    if origin is tuple:
        return "a list"
    if origin is Mapping or origin is dict or (isinstance(option, type) and attrs.has(option)):
        return "an object"
    if option is str:
        return "a string"
    name = getattr(option, "__name__", str(option))
    return _WORDS.get(name, name)


def _check_plain(value: object, expected: object, where: str) -> None:
    if expected is type(None):
        ok = value is None
    elif expected is bool:
        ok = isinstance(value, bool)
    elif expected is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif expected is str:
        # No path, name or text of a plan holds a NUL (and the OS refuses paths with one).
        ok = isinstance(value, str) and "\x00" not in value
    elif isinstance(expected, type):
        ok = isinstance(value, expected)  # an enum
    else:
        ok = True  # a type no plan field has: nothing to hold it to
    if not ok:
        name = getattr(expected, "__name__", str(expected))
        raise _wrong(where, _WORDS.get(name, name), value)


_WORDS = {
    "str": "a string without NUL",
    "int": "a number",
    "bool": "true or false",
    "NoneType": "null",
}


def _wrong(where: str, expected: str, value: object) -> TypeMismatchError:
    got = type(value).__name__
    return TypeMismatchError(
        f"{where or 'the plan'}: expected {expected}, not {got} {_shown(value)}"
    )


def _shown(value: object) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."
