"""Read a container-structure-test file (schema 2.0.0, YAML in block or flow style) into
`StructureTests`, with every bad input a located error: unknown or repeated keys, values of
the wrong type, missing names, commands or paths, patterns Go would not take, another
schema version, and the sections dockerpkg does not run. The YAML is composed into nodes
(which keep their lines) and typed here as Go's yaml.v2 types it (YAML 1.1 booleans; a
scalar read as text stays as written)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from typing import Any

from strictyaml.ruamel.error import MarkedYAMLError, YAMLError
from strictyaml.ruamel.events import (
    MappingEndEvent,
    MappingStartEvent,
    SequenceEndEvent,
    SequenceStartEvent,
)
from strictyaml.ruamel.loader import SafeLoader
from strictyaml.ruamel.main import compose, parse
from strictyaml.ruamel.nodes import MappingNode, Node, ScalarNode, SequenceNode

from dockerpkg.core.structure import (
    METADATA_NAME,
    CheckKind,
    CommandSpec,
    EnvVar,
    ExecutableBy,
    FileContentSpec,
    FileExistenceSpec,
    MetadataSpec,
    StructureCheck,
    StructureTests,
)
from dockerpkg.core.structure_regex import GoPattern, GoRegexError, compile_go
from dockerpkg.errors import DockerPkgError, Location

SCHEMA_VERSION = "2.0.0"

_NULL = "tag:yaml.org,2002:null"
_TRUE = frozenset({"y", "Y", "yes", "Yes", "YES", "on", "On", "ON", "true", "True", "TRUE"})
_FALSE = frozenset({"n", "N", "no", "No", "NO", "off", "Off", "OFF", "false", "False", "FALSE"})
_INT = re.compile(r"[-+]?[0-9]+")
# Go's int (64 bits), what yaml.v2 reads exitCode, uid and gid into.
_GO_INT = range(-(2**63), 2**63)
# A file nests 5 deep (file, section, test, setup, command); deeper is not a structure-tests
# file, and composing it would run out of Python's stack.
_MAX_DEPTH = 32
# What one file's distinct patterns may cost to compile: RE2 instructions in all (about a
# microsecond each; `\pL{1000}` is 1.2 million, common patterns a few dozen), and how many.
_MAX_PATTERN_COST = 4_000_000
_MAX_PATTERNS = 10_000
# Characters no check name may hold: its pytest id must stay one line, selectable with -k
# and on the command line.
_NAME_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})

# Sections container-structure-test has and dockerpkg does not run, with why.
UNSUPPORTED = {
    "globalEnvVars": "variables for every test are not supported; give each command test "
    "its own 'envVars'",
    "containerRunOptions": "run options (user, privileges, mounts, a TTY, the host's "
    "variables) are not supported: checks run as the image says",
    "licenseTests": "license tests are not supported",
}

_TOP = frozenset({"schemaVersion", *(k.value for k in CheckKind), *UNSUPPORTED})
_COMMAND = frozenset(
    {
        "name",
        "command",
        "args",
        "envVars",
        "setup",
        "teardown",
        "expectedOutput",
        "excludedOutput",
        "expectedError",
        "excludedError",
        "exitCode",
    }
)
_EXISTENCE = frozenset(
    {"name", "path", "shouldExist", "permissions", "uid", "gid", "isExecutableBy"}
)
_CONTENT = frozenset({"name", "path", "expectedContents", "excludedContents"})
_METADATA = frozenset(
    {
        "envVars",
        "unboundEnvVars",
        "labels",
        "exposedPorts",
        "unexposedPorts",
        "volumes",
        "unmountedVolumes",
        "entrypoint",
        "cmd",
        "workdir",
        "user",
    }
)
_PAIR = frozenset({"key", "value", "isRegex"})


class _BadError(Exception):
    """A problem at a node, raised while reading and located by the caller."""

    def __init__(self, node: Node | None, message: str) -> None:
        super().__init__(message)
        self.node = node
        self.message = message


def _line(node: Node | None) -> int | None:
    return None if node is None else int(node.start_mark.line) + 1


def parse_structure_tests(text: str, where: str) -> StructureTests:
    """The checks of the file WHERE holding TEXT; DockerPkgError names WHERE and the line
    of anything wrong."""
    try:
        _check_depth(text, where)
        root = compose(text, Loader=SafeLoader)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = " ".join(part for part in (exc.context, exc.problem) if part)
        line = mark.line + 1 if mark is not None else None
        raise DockerPkgError.single(where, f"not valid YAML: {what}", line) from None
    except YAMLError as exc:
        raise DockerPkgError.single(where, f"not valid YAML ({type(exc).__name__})") from None
    try:
        checks = _document(root, _Patterns())
    except _BadError as bad:
        raise DockerPkgError.single(where, bad.message, _line(bad.node)) from None
    seen: dict[str, StructureCheck] = {}
    for check in checks:
        if check.name in seen:
            first = seen[check.name].location.line
            raise DockerPkgError.single(
                where,
                f"the check name '{check.name}' is given twice (first on line {first}): "
                "each check is reported by its name",
                check.location.line,
            )
        seen[check.name] = check
    located = tuple(
        StructureCheck(c.name, c.kind, Location(where, c.location.line), c.spec) for c in checks
    )
    return StructureTests(where, located)


def _check_depth(text: str, where: str) -> None:
    """Refuse nesting deeper than _MAX_DEPTH, reading events one by one (no recursion) and
    stopping at the first too deep."""
    depth = 0
    for event in parse(text, Loader=SafeLoader):
        if isinstance(event, MappingStartEvent | SequenceStartEvent):
            depth += 1
            if depth > _MAX_DEPTH:
                raise DockerPkgError.single(
                    where,
                    f"lists and mappings nest more than {_MAX_DEPTH} deep: a structure-tests "
                    "file nests 5 deep at most",
                    event.start_mark.line + 1,
                )
        elif isinstance(event, MappingEndEvent | SequenceEndEvent):
            depth -= 1


def _document(root: Node | None, patterns: _Patterns) -> list[StructureCheck]:
    if root is None or (isinstance(root, ScalarNode) and root.tag == _NULL):
        raise _BadError(root, f"empty file: expected 'schemaVersion: {SCHEMA_VERSION}' and tests")
    fields = _mapping(root, _TOP, "the file")
    version = fields.get("schemaVersion")
    if version is None:
        raise _BadError(root, f"'schemaVersion' is missing (dockerpkg reads {SCHEMA_VERSION})")
    if _text(version) != SCHEMA_VERSION:
        raise _BadError(
            version,
            f"schemaVersion '{_text(version)}' is not supported: dockerpkg reads "
            f"{SCHEMA_VERSION} only",
        )
    for key, why in UNSUPPORTED.items():
        node = fields.get(key)
        if node is not None and not _empty(node):
            raise _BadError(node, f"'{key}': {why}")
    checks = [
        *_items(fields.get(CheckKind.COMMAND.value), CheckKind.COMMAND, _command, patterns),
        *_items(
            fields.get(CheckKind.FILE_CONTENT.value), CheckKind.FILE_CONTENT, _content, patterns
        ),
        *_items(
            fields.get(CheckKind.FILE_EXISTENCE.value),
            CheckKind.FILE_EXISTENCE,
            _existence,
            patterns,
        ),
    ]
    metadata = fields.get(CheckKind.METADATA.value)
    if metadata is not None and not _empty(metadata):
        spec = _metadata(_mapping(metadata, _METADATA, "the metadata test"), patterns)
        # An all-empty metadata test is not run, as container-structure-test skips it.
        if spec != MetadataSpec():
            key = next(k for k, v in root.value if v is metadata)
            location = Location("", _line(key))
            checks.append(StructureCheck(METADATA_NAME, CheckKind.METADATA, location, spec))
    return checks


def _items(
    node: Node | None,
    kind: CheckKind,
    read: Callable[[dict[str, Node], _Patterns], Any],
    patterns: _Patterns,
) -> list[StructureCheck]:
    checks = []
    what = {
        CheckKind.COMMAND: ("a command test", _COMMAND),
        CheckKind.FILE_CONTENT: ("a file content test", _CONTENT),
        CheckKind.FILE_EXISTENCE: ("a file existence test", _EXISTENCE),
    }[kind]
    for item in _sequence(node, kind.value):
        fields = _mapping(item, what[1], what[0])
        name = _text(fields["name"]) if "name" in fields else ""
        if not name:
            raise _BadError(fields.get("name", item), f"{what[0]} without a 'name'")
        _check_name(fields["name"], name)
        try:
            spec = read(fields, patterns)
        except _BadError as bad:
            node = item if bad.node is None else bad.node
            raise _BadError(node, f"{what[0][2:]} '{name}': {bad.message}") from None
        checks.append(StructureCheck(name, kind, Location("", _line(item)), spec))
    return checks


def _check_name(node: Node, name: str) -> None:
    """Refuse a name whose pytest test id could not be selected: one holding `::` (which
    separates an id's parts) or a control character or line break."""
    if "::" in name:
        raise _BadError(
            node,
            f"the check name {_shown(name)!r} holds '::', which separates the parts of a "
            "test's id in pytest: rename the check",
        )
    bad = next((c for c in name if unicodedata.category(c) in _NAME_CATEGORIES), None)
    if bad is not None:
        raise _BadError(
            node,
            f"the check name {_shown(name)!r} holds the control character U+{ord(bad):04X}: "
            "a check name is one line of text",
        )


def _command(fields: dict[str, Node], patterns: _Patterns) -> CommandSpec:
    command = _text(fields["command"]) if "command" in fields else ""
    if not command:
        raise _BadError(fields.get("command"), "'command' is missing or empty")
    env = _pairs(fields.get("envVars"), "envVars", patterns)
    for pair, node in zip(env, _sequence(fields.get("envVars"), "envVars"), strict=True):
        if not pair.key or not pair.value:
            raise _BadError(node, "each of 'envVars' needs a non-empty 'key' and 'value'")
    return CommandSpec(
        command=(command, *_texts(fields.get("args"), "args")),
        env=env,
        setup=_commands(fields.get("setup"), "setup"),
        teardown=_commands(fields.get("teardown"), "teardown"),
        expected_output=_patterns(fields.get("expectedOutput"), "expectedOutput", patterns),
        excluded_output=_patterns(fields.get("excludedOutput"), "excludedOutput", patterns),
        expected_error=_patterns(fields.get("expectedError"), "expectedError", patterns),
        excluded_error=_patterns(fields.get("excludedError"), "excludedError", patterns),
        exit_code=_int(fields["exitCode"], "exitCode") if "exitCode" in fields else 0,
    )


def _existence(fields: dict[str, Node], patterns: _Patterns) -> FileExistenceSpec:
    executable = _text(fields["isExecutableBy"]) if "isExecutableBy" in fields else ""
    if executable and executable.upper() not in ExecutableBy.__members__:
        raise _BadError(
            fields["isExecutableBy"],
            f"'isExecutableBy' is '{executable}', expected any, owner, group or other",
        )
    if executable and executable != executable.lower():
        raise _BadError(fields["isExecutableBy"], f"'isExecutableBy' is '{executable}': lower case")
    permissions = _text(fields["permissions"]) if "permissions" in fields else ""
    uid = _int(fields["uid"], "uid") if "uid" in fields else -1
    gid = _int(fields["gid"], "gid") if "gid" in fields else -1
    return FileExistenceSpec(
        path=_path(fields),
        should_exist=_bool(fields["shouldExist"], "shouldExist")
        if "shouldExist" in fields
        else True,
        permissions=permissions or None,
        # -1 is container-structure-test's "not checked".
        uid=None if uid == -1 else uid,
        gid=None if gid == -1 else gid,
        executable_by=ExecutableBy[executable.upper()] if executable else None,
    )


def _content(fields: dict[str, Node], patterns: _Patterns) -> FileContentSpec:
    return FileContentSpec(
        path=_path(fields),
        expected=_patterns(fields.get("expectedContents"), "expectedContents", patterns),
        excluded=_patterns(fields.get("excludedContents"), "excludedContents", patterns),
    )


def _metadata(fields: dict[str, Node], patterns: _Patterns) -> MetadataSpec:
    env = _pairs(fields.get("envVars"), "envVars", patterns)
    labels = _pairs(fields.get("labels"), "labels", patterns)
    for key, pairs in (("envVars", env), ("labels", labels)):
        for pair, node in zip(pairs, _sequence(fields.get(key), key), strict=True):
            if not pair.key:
                raise _BadError(node, f"each of '{key}' needs a non-empty 'key'")
    lists = {
        key: _texts(fields.get(key), key)
        for key in ("exposedPorts", "unexposedPorts", "volumes", "unmountedVolumes")
    }
    for key in ("exposedPorts", "volumes"):
        if "" in lists[key]:
            raise _BadError(fields[key], f"'{key}' holds an empty entry")
    unbound = _pairs(fields.get("unboundEnvVars"), "unboundEnvVars", patterns)
    return MetadataSpec(
        env=env,
        unbound_env=tuple(pair.key for pair in unbound),
        labels=labels,
        exposed_ports=lists["exposedPorts"],
        unexposed_ports=lists["unexposedPorts"],
        volumes=lists["volumes"],
        unmounted_volumes=lists["unmountedVolumes"],
        entrypoint=_optional_texts(fields.get("entrypoint"), "entrypoint"),
        cmd=_optional_texts(fields.get("cmd"), "cmd"),
        workdir=_text(fields["workdir"]) or None if "workdir" in fields else None,
        user=_text(fields["user"]) or None if "user" in fields else None,
    )


def _path(fields: dict[str, Node]) -> str:
    path = _text(fields["path"]) if "path" in fields else ""
    if not path:
        raise _BadError(fields.get("path"), "'path' is missing or empty")
    return path


# Typed readers of nodes.


def _empty(node: Node) -> bool:
    if isinstance(node, ScalarNode):
        return bool(node.tag == _NULL)
    return not node.value


def _mapping(node: Node, known: frozenset[str], what: str) -> dict[str, Node]:
    if not isinstance(node, MappingNode):
        raise _BadError(node, f"{what} must be a mapping")
    fields: dict[str, Node] = {}
    for key_node, value in node.value:
        key = _text(key_node)
        if key not in known:
            listed = ", ".join(sorted(known))
            raise _BadError(key_node, f"unknown key '{key}' in {what} (known: {listed})")
        if key in fields:
            raise _BadError(key_node, f"key '{key}' is given twice in {what}")
        fields[key] = value
    return fields


def _sequence(node: Node | None, key: str) -> list[Node]:
    if node is None or _empty(node):
        return []
    if not isinstance(node, SequenceNode):
        raise _BadError(node, f"'{key}' must be a list")
    return list(node.value)


def _text(node: Node) -> str:
    if not isinstance(node, ScalarNode):
        raise _BadError(node, "expected a single value, not a list or mapping")
    return "" if node.tag == _NULL else str(node.value)


def _texts(node: Node | None, key: str) -> tuple[str, ...]:
    return tuple(_text(item) for item in _sequence(node, key))


def _optional_texts(node: Node | None, key: str) -> tuple[str, ...] | None:
    # A null (or absent) list is "not checked"; `[]` checks that there is none.
    if node is None or (isinstance(node, ScalarNode) and node.tag == _NULL):
        return None
    return _texts(node, key)


def _commands(node: Node | None, key: str) -> tuple[tuple[str, ...], ...]:
    commands = []
    for item in _sequence(node, key):
        command = _texts(item, key)
        if not command:
            raise _BadError(
                item, f"each of '{key}' must be a non-empty list (a command and its args)"
            )
        commands.append(command)
    return tuple(commands)


def _patterns(node: Node | None, key: str, patterns: _Patterns) -> tuple[str, ...]:
    return tuple(patterns.compiled(item, key) for item in _sequence(node, key))


class _Patterns:
    """The patterns of one file, each distinct one compiled once (YAML aliases repeat a
    pattern at no cost to the file's writer) and kept with the checks that use it, so
    running them compiles nothing. Compiling is the one costly step of reading a file (a
    pattern Go takes may compile to a million instructions): past _MAX_PATTERNS distinct
    patterns or _MAX_PATTERN_COST instructions in all, the file is refused where the
    pattern crossing the line is written."""

    def __init__(self) -> None:
        self._known: dict[str, GoPattern] = {}
        self._cost = 0

    def compiled(self, node: Node, key: str) -> GoPattern:
        text = _text(node)
        known = self._known.get(text)
        if known is not None:
            return known
        if len(self._known) >= _MAX_PATTERNS:
            raise _BadError(
                node,
                f"more than {_MAX_PATTERNS} different patterns in one file: compiling them "
                "all would take too long",
            )
        try:
            pattern = compile_go(text)
        except GoRegexError as exc:
            raise _BadError(node, f"bad pattern in '{key}': {exc}") from None
        self._cost += pattern.cost
        if self._cost > _MAX_PATTERN_COST:
            raise _BadError(
                node,
                f"the file's patterns compile to more than {_MAX_PATTERN_COST:,} "
                f"instructions in all (this one in '{key}': {pattern.cost:,}): compiling "
                "them would take too long; use fewer or simpler patterns (a repetition such "
                "as \\pL{1000} costs about a million)",
            )
        self._known[text] = pattern
        return pattern


def _pairs(node: Node | None, key: str, patterns: _Patterns) -> tuple[EnvVar, ...]:
    pairs = []
    for item in _sequence(node, key):
        fields = _mapping(item, _PAIR, f"an entry of '{key}'")
        is_regex = _bool(fields["isRegex"], "isRegex") if "isRegex" in fields else False
        value = _text(fields["value"]) if "value" in fields else ""
        if is_regex and "value" in fields:
            value = patterns.compiled(fields["value"], key)
        pairs.append(
            EnvVar(
                key=_text(fields["key"]) if "key" in fields else "",
                value=value,
                is_regex=is_regex,
            )
        )
    return tuple(pairs)


def _plain(node: Node, key: str, expected: str) -> str:
    if not isinstance(node, ScalarNode) or node.style is not None or node.tag == _NULL:
        raise _BadError(node, f"'{key}' must be {expected}")
    return str(node.value)


def _int(node: Node, key: str) -> int:
    value = _plain(node, key, "a whole number")
    if not _INT.fullmatch(value):
        raise _BadError(node, f"'{key}' must be a whole number, not '{_shown(value)}'")
    digits = value.lstrip("+-")
    if digits.startswith("0") and digits != "0":
        # yaml.v2 reads 010 as octal (8) and 09 as 9: refused rather than read either way.
        raise _BadError(node, f"'{key}' is written with a leading zero: {_shown(value)}")
    # Checked before int(), which refuses texts of over 4300 digits.
    number = int(value) if len(digits) <= 19 else None
    if number is None or number not in _GO_INT:
        raise _BadError(
            node,
            f"'{key}' is out of range: {_shown(value)} (a whole number from "
            f"{_GO_INT.start} to {_GO_INT.stop - 1})",
        )
    return number


def _shown(value: str) -> str:
    """VALUE, cut short when long, for a message."""
    return value if len(value) <= 40 else f"{value[:20]}...({len(value)} characters)"


def _bool(node: Node, key: str) -> bool:
    value = _plain(node, key, "true or false")
    if value not in _TRUE | _FALSE:
        raise _BadError(node, f"'{key}' must be true or false, not '{value}'")
    return value in _TRUE
