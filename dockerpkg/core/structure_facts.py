"""What a probe of a built image observes, as values the verdicts judge: a command's run, a
path's entry in the image's file system, the image's config."""

from __future__ import annotations

import enum
import types
from collections.abc import Mapping

import attrs


@attrs.frozen
class RunResult:
    """A command's exit status and its output, decoded as UTF-8 (bad bytes replaced)."""

    exit_code: int
    stdout: str
    stderr: str


class FileKind(enum.Enum):
    """The type of a path's entry in the image, as the archive Docker gives of it says."""

    FILE = "file"
    DIRECTORY = "directory"
    SYMLINK = "symlink"
    HARDLINK = "hardlink"
    CHAR_DEVICE = "char-device"
    BLOCK_DEVICE = "block-device"
    FIFO = "fifo"


@attrs.frozen
class FileStat:
    """A path's entry, not following a symlink at the end of the path. MODE holds the
    permission, setuid, setgid and sticky bits (0o7777)."""

    path: str
    kind: FileKind
    mode: int
    uid: int
    gid: int
    size: int
    link_target: str | None = None

    @property
    def mode_string(self) -> str:
        """The mode as Go's os.FileMode.String() prints it (`drwxr-xr-x`, `Lrwxrwxrwx`,
        `-rwsr-xr-x` for setuid is printed `urwxr-xr-x`), the form `permissions` is
        compared with."""
        return go_mode_string(self.kind, self.mode)


def go_mode_string(kind: FileKind, mode: int) -> str:
    """Go's FileMode.String(): type letters (d, L, D, p, u, g, c, t in Go's order), or
    `-` when none, then rwx for owner, group and others."""
    letters = ""
    device = kind in (FileKind.BLOCK_DEVICE, FileKind.CHAR_DEVICE)
    for letter, present in (
        ("d", kind is FileKind.DIRECTORY),
        ("L", kind is FileKind.SYMLINK),
        ("D", device),
        ("p", kind is FileKind.FIFO),
        ("u", bool(mode & 0o4000)),
        ("g", bool(mode & 0o2000)),
        ("c", kind is FileKind.CHAR_DEVICE),
        ("t", bool(mode & 0o1000)),
    ):
        if present:
            letters += letter
    bits = "".join(
        char if mode & (1 << (8 - index)) else "-" for index, char in enumerate("rwxrwxrwx")
    )
    return (letters or "-") + bits


def _frozen_mapping(value: Mapping[str, str]) -> Mapping[str, str]:
    return types.MappingProxyType(dict(value))


@attrs.frozen
class ImageConfig:
    """The config of an image: ENV as a mapping (the first `=` splits), entrypoint and cmd
    as the image holds them (None when unset), exposed ports as Docker keys them
    (`8080/tcp`), volumes' paths."""

    env: Mapping[str, str] = attrs.field(converter=_frozen_mapping)
    labels: Mapping[str, str] = attrs.field(converter=_frozen_mapping)
    user: str
    entrypoint: tuple[str, ...] | None
    cmd: tuple[str, ...] | None
    workdir: str
    exposed_ports: tuple[str, ...]
    volumes: tuple[str, ...]
    architecture: str


def env_mapping(entries: list[str] | tuple[str, ...] | None) -> dict[str, str]:
    """An image's `Env` list as a mapping; an entry without `=` is a variable set empty."""
    result: dict[str, str] = {}
    for entry in entries or ():
        key, _, value = entry.partition("=")
        result[key] = value
    return result
