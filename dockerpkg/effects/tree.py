"""Read an image tree from disk into an immutable Snapshot: the one place the tree is read."""

from __future__ import annotations

import errno
import hashlib
import os

import attrs

from dockerpkg.core.spec import ImageSource, Snapshot
from dockerpkg.errors import DockerPkgError, Problem, error, warning

TEMPLATE = "Dockerfile.template"
BUILD_TEMPLATE = "Dockerfile.build.template"
CHANGELOG = "changelog"
CONTROL = "control"
# The files dockerpkg itself reads; each must be a readable UTF-8 text file.
DEFINITION_FILES = (TEMPLATE, CHANGELOG, CONTROL, BUILD_TEMPLATE)
# Larger files are build context, not something a template would include.
MAX_INCLUDE_SIZE = 256 * 1024


@attrs.frozen
class _Content:
    """One file as read: its text (when small UTF-8), its digest, and why there is no text."""

    text: str | None
    digest: str
    why: str | None = None  # for the user, when text is None
    line: int | None = None  # where WHY happens, for text that is not UTF-8


def _read(path: str, *, whole: bool = False) -> _Content:
    """A file's text (UTF-8 files up to MAX_INCLUDE_SIZE, or any size when WHOLE) and the
    sha256 of its content."""
    # Plain descriptors: thousands of small files, where buffered file objects cost more.
    try:
        descriptor = os.open(path, os.O_RDONLY)
        try:
            head = _read_up_to(descriptor, None if whole else MAX_INCLUDE_SIZE + 1)
            digest = hashlib.sha256(head)
            if not whole and len(head) > MAX_INCLUDE_SIZE:
                for block in iter(lambda: os.read(descriptor, 1 << 20), b""):
                    digest.update(block)
                return _Content(None, digest.hexdigest(), "larger than 256 KiB")
        finally:
            os.close(descriptor)
    except OSError as exc:
        return _Content(None, f"unreadable: {exc.strerror}", f"cannot read: {exc.strerror}")
    try:
        return _Content(head.decode("utf-8"), digest.hexdigest())
    except UnicodeDecodeError as exc:
        line = head.count(b"\n", 0, exc.start) + 1
        byte = head[exc.start : exc.start + 1].hex()
        return _Content(None, digest.hexdigest(), f"not UTF-8 text (byte 0x{byte})", line)


def _read_up_to(descriptor: int, size: int | None) -> bytes:
    """Up to SIZE bytes (None: all of them)."""
    chunks = []
    left = size
    while left is None or left > 0:
        chunk = os.read(descriptor, 1 << 20 if left is None else left)
        if not chunk:
            break
        chunks.append(chunk)
        if left is not None:
            left -= len(chunk)
    return b"".join(chunks)


def _rel(root: str, path: str) -> str:
    """PATH (made by joining names to ROOT) relative to ROOT, "/"-separated."""
    if path == root:
        return "."
    prefix = root if root.endswith(os.sep) else root + os.sep
    rel = path[len(prefix) :] if path.startswith(prefix) else os.path.relpath(path, root)
    return rel.replace(os.sep, "/")


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def link_problem(path: str, folder: str) -> str | None:
    """Why the symlink PATH cannot be part of the build context FOLDER, or None if it can.

    A build context holds one image folder: a link leaving it would give Docker (and
    dockerpkg's own copy of the context) something else, or nothing; an absolute link means
    something else once the folder is copied. A link that cannot be resolved, or that leads
    back to a folder holding it, is a loop for anything following it.
    """
    target = os.readlink(path)
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return f"symlink loop: {target!r} leads back to itself"
    if os.path.isabs(target):
        return f"absolute symlink to {target!r}: the build context holds only the image folder"
    resolved = os.path.realpath(path)
    if not _inside(resolved, os.path.realpath(folder)):
        return (
            f"symlink to {target!r} leads outside the image folder: the build context holds "
            "only the image folder"
        )
    if os.path.isdir(resolved) and _inside(os.path.realpath(os.path.dirname(path)), resolved):
        return f"symlink loop: {target!r} is a folder holding the link"
    return None


@attrs.frozen
class _Folder:
    """One folder's entries by kind, names sorted."""

    files: tuple[str, ...]  # regular files
    links: tuple[str, ...]  # symbolic links, whatever they point to
    dirs: tuple[str, ...]  # real subfolders (walked)
    others: tuple[str, ...]  # FIFOs, sockets, devices

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self.files + self.links + self.dirs + self.others)


def _walk(top: str) -> tuple[dict[str, _Folder], list[str]]:
    """Every folder under TOP (links are not followed), and the folders that cannot be read."""
    listing: dict[str, _Folder] = {}
    unreadable: list[str] = []
    stack = [top]
    while stack:
        current = stack.pop()
        try:
            with os.scandir(current) as scan:
                entries = sorted(scan, key=lambda e: e.name)
        except OSError:
            unreadable.append(current)
            continue
        kinds: dict[str, list[str]] = {"files": [], "links": [], "dirs": [], "others": []}
        for entry in entries:
            try:
                if entry.is_symlink():
                    kind = "links"
                elif entry.is_dir(follow_symlinks=False):
                    kind = "dirs"
                elif entry.is_file(follow_symlinks=False):
                    kind = "files"
                else:
                    kind = "others"
            except OSError:
                kind = "others"
            kinds[kind].append(entry.name)
        folder = _Folder(**{k: tuple(v) for k, v in kinds.items()})
        listing[current] = folder
        stack.extend(os.path.join(current, d) for d in reversed(folder.dirs))
    return listing, unreadable


def _owner(top: str, folder: str, image_dirs: set[str]) -> str | None:
    """The image folder whose build context FOLDER is part of: the nearest one above it."""
    owner = folder
    while owner not in image_dirs and owner != top and os.path.dirname(owner) != owner:
        owner = os.path.dirname(owner)
    return owner if owner in image_dirs else None


def _check_folder(top: str, current: str, entries: _Folder) -> list[Problem]:
    """Problems with the definition files of an image folder: folders or devices in their place."""
    problems = []
    for name in DEFINITION_FILES:
        path = os.path.join(current, name)
        if name in entries.dirs or (name in entries.links and os.path.isdir(path)):
            problems.append(error(_rel(top, path), "is a folder, not a file"))
        elif name in entries.others:
            problems.append(error(_rel(top, path), "is not a regular file"))
    return problems


def _read_image(
    top: str, folder: str, owned: list[str], listing: dict[str, _Folder]
) -> tuple[ImageSource | None, list[Problem]]:
    """One image folder's files, or the problems that make it unusable."""
    names: list[str] = []
    texts: list[tuple[str, str]] = []
    hashes: list[tuple[str, str]] = []
    unreadable: dict[str, _Content] = {}
    problems: list[Problem] = []
    for sub in sorted(owned):
        entries = listing[sub]
        prefix = "" if sub == folder else _rel(folder, sub) + "/"
        links, others = set(entries.links), set(entries.others)
        for name in sorted(entries.files + entries.links + entries.others):
            path = os.path.join(sub, name)
            relative = prefix + name
            if name in others:
                problems.append(
                    error(
                        _rel(top, path), "not a file, folder or symlink: refused in a build context"
                    )
                )
                continue
            content: _Content | None = None
            if name in links:
                why = link_problem(path, folder)
                if why is not None:
                    problems.append(error(_rel(top, path), why))
                    continue
                if os.path.isdir(path) or not os.path.exists(path):
                    target = os.readlink(path)
                    why = "is a folder" if os.path.isdir(path) else f"symlink to missing {target!r}"
                    content = _Content(None, "symlink:" + target, why)
            if content is None:
                content = _read(path, whole=relative in DEFINITION_FILES)
            names.append(relative)
            hashes.append((relative, content.digest))
            if content.text is not None:
                texts.append((relative, content.text))
            elif relative in DEFINITION_FILES:
                unreadable[relative] = content
    for name, content in unreadable.items():
        problems.append(
            error(_rel(top, os.path.join(folder, name)), content.why or "", content.line)
        )
    if problems:
        return None, problems
    text_map = dict(texts)
    source = ImageSource(
        path=_rel(top, folder),
        template=text_map[TEMPLATE],
        changelog=text_map[CHANGELOG],
        control=text_map.get(CONTROL),
        build_template=text_map.get(BUILD_TEMPLATE),
        files=tuple(texts),
        names=frozenset(names),
        hashes=tuple(hashes),
    )
    return source, []


def _image_folders(
    top: str, listing: dict[str, _Folder]
) -> tuple[list[str], list[Problem], list[Problem]]:
    """The image folders (sorted), problems with would-be ones, and the folders skipped."""
    image_dirs = []
    problems: list[Problem] = []
    warnings: list[Problem] = []
    for current, entries in listing.items():
        files = set(entries.files + entries.links)
        present = entries.names
        if TEMPLATE in present and CHANGELOG in present:
            # Only folders, links and devices can stand where a definition file should be.
            odd = entries.dirs or entries.links or entries.others
            found = _check_folder(top, current, entries) if odd else []
            problems.extend(found)
            if not found:
                image_dirs.append(current)
        elif TEMPLATE in files or CHANGELOG in files:
            missing = CHANGELOG if TEMPLATE in files else TEMPLATE
            warnings.append(warning(_rel(top, current), f"skipped: the folder has no {missing}"))
    return sorted(image_dirs), problems, warnings


def read_snapshot(root: str | os.PathLike[str]) -> Snapshot:
    """Walk ROOT once; folders with a template and a changelog are images.

    Every other file belongs to the nearest image folder above it (its build context).
    """
    top = os.fspath(root)
    if not os.path.lexists(top):
        raise DockerPkgError.single(top, "no such folder: the image tree is not there")
    if not os.path.isdir(top):
        raise DockerPkgError.single(top, "not a folder: give the folder holding the image folders")
    listing, unreadable_dirs = _walk(top)
    image_dirs, problems, warnings = _image_folders(top, listing)
    image_set = set(image_dirs)
    owned: dict[str, list[str]] = {d: [] for d in image_dirs}
    for folder in listing:
        if (owner := _owner(top, folder, image_set)) is not None:
            owned[owner].append(folder)
    for folder in unreadable_dirs:
        # Part of a build context: Docker could not send it either.
        if _owner(top, folder, image_set) is not None:
            problems.append(error(_rel(top, folder), "cannot read the folder"))
        else:
            warnings.append(warning(_rel(top, folder), "skipped: cannot read the folder"))
    sources = []
    for folder in image_dirs:
        source, found = _read_image(top, folder, owned[folder], listing)
        problems.extend(found)
        if source is not None:
            sources.append(source)
    if problems:
        raise DockerPkgError(sorted(problems, key=str) + sorted(warnings, key=str))
    sources.sort(key=lambda s: s.path)
    return Snapshot(images=tuple(sources), warnings=tuple(sorted(warnings, key=str)))
