"""Symbolic links in image folders: where one may lead, and the build context they make.

docker-pkg copied each image folder with every link followed, so long-lived trees share
files through relative links (to a `common/` folder, a sibling image, a folder beside the
tree). dockerpkg follows them too, into the snapshot (definitions cover linked content) and
into the build context (the daemon gets the content, never a link), with one limit docker-pkg
did not have: a link may lead only inside the repository holding the tree (the nearest folder
at or above it with a `.git`; the tree itself when there is none) or inside a folder the
config lists under `context_roots`. A link to `/etc`, into `~/.docker` or past the repository
would put files of the machine into an image, so it is refused before anything is built.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import stat
from collections.abc import Iterable, Iterator

import attrs

from dockerpkg.effects.workfiles import WORKING_FILES

CONTEXT_ROOTS_KEY = "context_roots"


def repository_root(directory: str) -> str:
    """The real path of the nearest folder at or above DIRECTORY holding `.git` (a folder, or
    a file as in worktrees and submodules); DIRECTORY's own when there is none."""
    start = os.path.realpath(directory)
    current = start
    while True:
        if os.path.lexists(os.path.join(current, ".git")):
            return current
        parent = os.path.dirname(current)
        if parent == current:
            return start
        current = parent


def inside(path: str, folder: str) -> bool:
    """Whether the real PATH is FOLDER or under it."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


@attrs.frozen
class LinkPolicy:
    """Where links may lead: real paths, fixed before the tree is read."""

    repository: str  # the repository holding the tree (or the tree itself)
    extra_roots: tuple[str, ...] = ()  # the config's context_roots
    # Files and folders never followed to, wherever they are: config files and the Docker
    # client's folder, which may hold credentials.
    private: frozenset[str] = frozenset()

    @classmethod
    def for_tree(
        cls, directory: str, extra_roots: Iterable[str] = (), private: Iterable[str] = ()
    ) -> LinkPolicy:
        return cls(
            repository_root(directory),
            tuple(os.path.realpath(root) for root in extra_roots),
            frozenset(os.path.realpath(path) for path in private),
        )

    @property
    def roots(self) -> tuple[str, ...]:
        return (self.repository, *self.extra_roots)

    def outside_why(self, target: str, resolved: str) -> str | None:
        """Why a link to TARGET (real path RESOLVED) may not be followed, or None."""
        if any(inside(resolved, path) for path in self.private):
            return (
                f"symlink to {target!r} leads to what may hold credentials (a config file of "
                "the run, or the Docker client's folder): it is never copied into a build context"
            )
        if any(inside(resolved, root) for root in self.roots):
            return None
        return (
            f"symlink to {target!r} leads outside the repository holding the tree "
            f"({self.repository}): links are followed only inside it, or inside a folder "
            f"listed under '{CONTEXT_ROOTS_KEY}' in the config"
        )


@attrs.frozen
class Followed:
    """Where a link leads: the real path, and whether it is a folder (else a regular file)."""

    real: str
    folder: bool


def follow(path: str, policy: LinkPolicy, holders: tuple[str, ...]) -> Followed | str:
    """Where the link PATH leads, or why it cannot be followed.

    HOLDERS are the real paths of the folders being copied around the link (the image folder
    first): a link to one of them, or to a folder above one, would copy itself for ever.
    """
    target = os.readlink(path)
    try:
        info = os.stat(path)
    except OSError as exc:
        return _unfollowable(target, exc)
    resolved = os.path.realpath(path)
    why = policy.outside_why(target, resolved)
    if why is None and stat.S_ISDIR(info.st_mode):
        if any(inside(holder, resolved) for holder in holders):
            why = f"symlink loop: {target!r} is a folder holding the link"
    elif why is None and not stat.S_ISREG(info.st_mode):
        why = f"symlink to {target!r} leads to something that is not a file or folder"
    return why if why is not None else Followed(resolved, folder=stat.S_ISDIR(info.st_mode))


def _unfollowable(target: str, exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return f"symlink loop: {target!r} leads back to itself"
    if exc.errno == errno.ENOENT:
        return f"symlink to missing {target!r}"
    return f"cannot follow the symlink to {target!r}: {exc.strerror}"


@attrs.frozen
class Entry:
    """One file or folder of a build context: its name there and where its content is."""

    name: str  # relative to the context, "/"-separated
    source: str  # the path to read (through links already followed)
    folder: bool
    # Part of the image's definition; not so in an image folder nested in this one (the
    # snapshot gives its files to that image), which the context still holds, as docker-pkg's.
    counted: bool = True
    # Sent to the daemon; a private file (see LinkPolicy) is only hashed, as the snapshot
    # hashed it.
    sent: bool = True


@attrs.frozen
class Refusal:
    """A link (or other entry) that cannot be part of a build context, and why."""

    name: str  # relative to the context, "/"-separated
    why: str


def linked_entries(
    link: str, name: str, policy: LinkPolicy, holders: tuple[str, ...]
) -> tuple[list[Entry], list[Refusal]]:
    """What the link LINK, named NAME in the context, puts there: a file, or a folder and
    everything in it (links inside followed the same way)."""
    walker = _Walker(policy)
    entries = list(walker.link(link, name, holders))
    return entries, walker.refusals


def context_entries(
    folder: str, policy: LinkPolicy, skip: Iterable[str] = ()
) -> tuple[list[Entry], list[Refusal]]:
    """Every file and folder the build context of the image folder FOLDER holds, links
    followed, in walk order (a folder before what it holds); and what cannot be in it.

    SKIP are real paths left out (private files inside the folder, as before links counted).
    """
    walker = _Walker(policy, frozenset(skip))
    real = os.path.realpath(folder)
    entries = list(walker.folder(real, "", (real,), top=True))
    return entries, walker.refusals


# The files that make a folder an image folder (dockerpkg.effects.tree reads them).
_IMAGE_FILES = frozenset({"Dockerfile.template", "changelog"})


@attrs.define
class _Walker:
    """One walk through folders and links, collecting what cannot be followed."""

    policy: LinkPolicy
    skip: frozenset[str] = frozenset()
    refusals: list[Refusal] = attrs.field(factory=list)

    def link(
        self, path: str, name: str, holders: tuple[str, ...], *, counted: bool = True
    ) -> Iterator[Entry]:
        followed = follow(path, self.policy, holders)
        if isinstance(followed, str):
            self.refusals.append(Refusal(name, followed))
        elif followed.folder:
            yield Entry(name, followed.real, folder=True, counted=counted)
            # The snapshot follows a linked folder whole: no image folder is found in it.
            yield from self.folder(
                followed.real, name + "/", (*holders, followed.real), linked=True, counted=counted
            )
        else:
            yield Entry(name, followed.real, folder=False, counted=counted)

    def folder(
        self,
        path: str,
        prefix: str,
        holders: tuple[str, ...],
        *,
        top: bool = False,
        linked: bool = False,
        counted: bool = True,
    ) -> Iterator[Entry]:
        try:
            with os.scandir(path) as scan:
                found = sorted(scan, key=lambda e: e.name)
        except OSError as exc:
            why = f"cannot read the folder: {exc.strerror}"
            self.refusals.append(Refusal(prefix.rstrip("/") or ".", why))
            return
        if not top and not linked and {item.name for item in found} >= _IMAGE_FILES:
            counted = False  # an image folder of its own
        for item in found:
            name = prefix + item.name
            if item.name in WORKING_FILES:
                continue
            if item.path in self.skip:
                if counted and item.is_file(follow_symlinks=False):
                    yield Entry(name, item.path, folder=False, sent=False)
                continue
            if item.is_symlink():
                yield from self.link(item.path, name, holders, counted=counted)
            elif item.is_dir(follow_symlinks=False):
                yield Entry(name, item.path, folder=True, counted=counted)
                yield from self.folder(
                    item.path,
                    name + "/",
                    (*holders, item.path),
                    linked=linked,
                    counted=counted,
                )
            elif item.is_file(follow_symlinks=False):
                yield Entry(name, item.path, folder=False, counted=counted)
            else:
                why = "not a file, folder or symlink: refused in a build context"
                self.refusals.append(Refusal(name, why))


@attrs.frozen
class Copied:
    """What a copy of a build context holds, read in the copying pass: the sha256 of each
    file of the image's definition, and its .dockerignore text (as the snapshot reads it)."""

    hashes: tuple[tuple[str, str], ...]  # (name, sha256 hex), in copy order
    dockerignore: str | None


_BLOCK = 1 << 20
_DOCKERIGNORE_LIMIT = 256 * 1024  # as the snapshot: larger files are context, not text


def copy_context(entries: Iterable[Entry], destination: str) -> Copied:
    """Write ENTRIES under DESTINATION (which exists): folders made, files copied with their
    mode and times, as docker-pkg's copy of the folder did, each file hashed as it is copied;
    raises OSError (also for what is no longer a regular file: a FIFO is never waited on)."""
    folders = []
    hashes = []
    dockerignore = None
    for entry in entries:
        path = os.path.join(destination, *entry.name.split("/"))
        if entry.folder:
            os.mkdir(path)
            folders.append((entry.source, path))
            continue
        digest, head = _copy_file(entry.source, path if entry.sent else None)
        if entry.counted:
            hashes.append((entry.name, digest))
        if entry.name == ".dockerignore":
            dockerignore = _text(head)
    # Modes last: a read-only folder must take its files first.
    for source, path in reversed(folders):
        shutil.copymode(source, path)
    return Copied(tuple(hashes), dockerignore)


def _copy_file(source: str, path: str | None) -> tuple[str, bytes]:
    """Copy SOURCE to the new file PATH (None: only read it); the sha256 hex of the content
    and its first bytes (up to the .dockerignore limit, and one more)."""
    # Non-blocking: opening a FIFO put where a file was would wait for a writer for ever.
    reader = os.open(source, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        info = os.fstat(reader)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, "no longer a regular file", source)
        digest = hashlib.sha256()
        head = bytearray()
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        writer = None if path is None else os.open(path, flags, 0o600)
        try:
            while block := os.read(reader, _BLOCK):
                digest.update(block)
                if len(head) <= _DOCKERIGNORE_LIMIT:
                    head += block[: _DOCKERIGNORE_LIMIT + 1 - len(head)]
                view = memoryview(block)
                while writer is not None and view:
                    view = view[os.write(writer, view) :]
            if writer is not None:
                os.fchmod(writer, stat.S_IMODE(info.st_mode))
        finally:
            if writer is not None:
                os.close(writer)
        if path is not None:
            os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
    finally:
        os.close(reader)
    return digest.hexdigest(), bytes(head)


def _text(head: bytes) -> str | None:
    """HEAD as the snapshot reads a small file's text: None when too large or not UTF-8."""
    if len(head) > _DOCKERIGNORE_LIMIT:
        return None
    try:
        return head.decode("utf-8")
    except UnicodeDecodeError:
        return None
