"""Read an image tree from disk into an immutable Snapshot: the one place the tree is read."""

from __future__ import annotations

import hashlib
import os

import attrs

from dockerpkg.core.spec import ImageSource, Snapshot
from dockerpkg.effects.links import LinkPolicy, linked_entries
from dockerpkg.effects.workfiles import WORKING_FILES
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


def _walk(top: str) -> tuple[dict[str, _Folder], list[str], list[str]]:
    """Every folder under TOP (links are not followed), the folders that cannot be read, and
    dockerpkg's own working files found (left out of the listing)."""
    listing: dict[str, _Folder] = {}
    unreadable: list[str] = []
    working: list[str] = []
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
            if entry.name in WORKING_FILES:
                working.append(entry.path)
                continue
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
    return listing, unreadable, working


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


def _holders(folder: str, sub: str) -> tuple[str, ...]:
    """Real paths of FOLDER and of each folder down to its subfolder SUB: what a link in SUB
    must not lead to (or above), or copying it would never end."""
    chain = [os.path.realpath(folder)]
    if sub != folder:
        for part in _rel(folder, sub).split("/"):
            chain.append(os.path.join(chain[-1], part))
    return tuple(chain)


def _read_image(
    top: str, folder: str, owned: list[str], listing: dict[str, _Folder], policy: LinkPolicy
) -> tuple[ImageSource | None, list[Problem]]:
    """One image folder's files (links followed, see dockerpkg.effects.links), or the
    problems that make it unusable."""
    names: list[str] = []
    texts: list[tuple[str, str]] = []
    hashes: list[tuple[str, str]] = []
    unreadable: dict[str, _Content] = {}
    unread: list[tuple[str, tuple[str, int | None]]] = []
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
            if name in links:
                linked, refusals = linked_entries(path, relative, policy, _holders(folder, sub))
                problems.extend(
                    error(_rel(top, os.path.join(folder, r.name)), r.why) for r in refusals
                )
                files = [(e.name, e.source) for e in linked if not e.folder]
            else:
                files = [(relative, path)]
            for inner, origin in files:
                content = _read(origin, whole=inner in DEFINITION_FILES)
                names.append(inner)
                hashes.append((inner, content.digest))
                if content.text is not None:
                    texts.append((inner, content.text))
                elif inner in DEFINITION_FILES:
                    unreadable[inner] = content
                else:
                    unread.append((inner, (content.why or "cannot read it", content.line)))
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
        unread=tuple(unread),
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


def read_snapshot(root: str | os.PathLike[str], policy: LinkPolicy | None = None) -> Snapshot:
    """Walk ROOT once; folders with a template and a changelog are images.

    Every other file belongs to the nearest image folder above it (its build context); links
    are followed where POLICY allows (default: inside the repository holding ROOT).
    """
    top = os.fspath(root)
    if not os.path.lexists(top):
        raise DockerPkgError.single(top, "no such folder: the image tree is not there")
    if not os.path.isdir(top):
        raise DockerPkgError.single(top, "not a folder: give the folder holding the image folders")
    policy = policy or LinkPolicy.for_tree(top)
    listing, unreadable_dirs, working = _walk(top)
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
        source, found = _read_image(top, folder, owned[folder], listing, policy)
        problems.extend(found)
        if source is not None:
            sources.append(source)
    if problems:
        raise DockerPkgError(sorted(problems, key=str) + sorted(warnings, key=str))
    sources.sort(key=lambda s: s.path)
    return Snapshot(
        images=tuple(sources),
        warnings=tuple(sorted(warnings, key=str)),
        working=tuple(sorted(_rel(top, path) for path in working)),
    )
