"""The checks of a container-structure-test file (schema 2.0.0) as values: one
`StructureCheck` per command, file-existence and file-content test, and one for the metadata
test, each with the place it was written. Reading the file is `structure_yaml`, the
verdicts are `structure_verdict`; docs/structure-tests.md is the reference."""

from __future__ import annotations

import enum

import attrs

from dockerpkg.errors import Location


class CheckKind(enum.Enum):
    """The four kinds of check dockerpkg runs; the value is the file's section."""

    COMMAND = "commandTests"
    FILE_EXISTENCE = "fileExistenceTests"
    FILE_CONTENT = "fileContentTests"
    METADATA = "metadataTest"


class ExecutableBy(enum.Enum):
    """Whom `isExecutableBy` asks an executable bit for; the value is its mode bits."""

    ANY = 0o111
    OWNER = 0o100
    GROUP = 0o010
    OTHER = 0o001


@attrs.frozen
class EnvVar:
    """A `key`/`value` pair of `envVars` or `labels`; IS_REGEX only means something in the
    metadata test (the value is then a pattern the actual value must contain a match of)."""

    key: str
    value: str
    is_regex: bool = False


@attrs.frozen
class CommandSpec:
    """What a command test runs and expects. Patterns are Go regular expressions as
    written (a match anywhere in the text passes); `teardown` is read and not run, as
    container-structure-test's Docker driver does (each test has its own container)."""

    command: tuple[str, ...]
    env: tuple[EnvVar, ...] = ()
    setup: tuple[tuple[str, ...], ...] = ()
    teardown: tuple[tuple[str, ...], ...] = ()
    expected_output: tuple[str, ...] = ()
    excluded_output: tuple[str, ...] = ()
    expected_error: tuple[str, ...] = ()
    excluded_error: tuple[str, ...] = ()
    exit_code: int = 0


@attrs.frozen
class FileExistenceSpec:
    """A path's existence and, when it should exist, its mode string (as Go's
    os.FileMode prints it, e.g. `-rwxr-xr-x`), owner ids and executable bits."""

    path: str
    should_exist: bool = True
    permissions: str | None = None
    uid: int | None = None
    gid: int | None = None
    executable_by: ExecutableBy | None = None


@attrs.frozen
class FileContentSpec:
    """Patterns a file's content must and must not contain."""

    path: str
    expected: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()


@attrs.frozen
class MetadataSpec:
    """What the image's config must hold. None is "not checked"; an empty tuple for
    entrypoint or cmd checks that the image has none."""

    env: tuple[EnvVar, ...] = ()
    unbound_env: tuple[str, ...] = ()
    labels: tuple[EnvVar, ...] = ()
    exposed_ports: tuple[str, ...] = ()
    unexposed_ports: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()
    unmounted_volumes: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    workdir: str | None = None
    user: str | None = None


Spec = CommandSpec | FileExistenceSpec | FileContentSpec | MetadataSpec


@attrs.frozen
class StructureCheck:
    """One check of the file: its name (the metadata test, which has none, is named
    METADATA_NAME), its kind, where it is written and what it checks."""

    name: str
    kind: CheckKind
    location: Location
    spec: Spec


# The metadata test's name: container-structure-test reports it by this title too.
METADATA_NAME = "Metadata Test"


@attrs.frozen
class StructureTests:
    """The checks of one `structure-tests.yaml`, in the file's order within each kind
    (command, file content, file existence, metadata: the order container-structure-test
    runs them in)."""

    path: str
    checks: tuple[StructureCheck, ...]


@attrs.frozen
class Verdict:
    """A check's outcome: passed, or not with the reasons (each a sentence)."""

    passed: bool
    messages: tuple[str, ...] = ()

    @classmethod
    def of(cls, messages: list[str]) -> Verdict:
        """Passed exactly when there is nothing to say against it."""
        return cls(not messages, tuple(messages))
