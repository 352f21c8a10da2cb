"""Read an image tree from disk into an immutable Snapshot: the one place the tree is read."""

from __future__ import annotations

import contextlib
import hashlib
import os

from dockerpkg.core.spec import ImageSource, Snapshot
from dockerpkg.errors import DockerPkgError, Problem, error, warning

TEMPLATE = "Dockerfile.template"
BUILD_TEMPLATE = "Dockerfile.build.template"
CHANGELOG = "changelog"
CONTROL = "control"
# Larger files are build context, not something a template would include.
MAX_INCLUDE_SIZE = 256 * 1024


def _read(path: str) -> tuple[str | None, str]:
    """A file's text (small UTF-8 files only) and the sha256 of its content."""
    # Plain descriptors: thousands of small files, where buffered file objects cost more.
    try:
        descriptor = os.open(path, os.O_RDONLY)
        try:
            head = _read_up_to(descriptor, MAX_INCLUDE_SIZE + 1)
            digest = hashlib.sha256(head)
            if len(head) > MAX_INCLUDE_SIZE:
                for block in iter(lambda: os.read(descriptor, 1 << 20), b""):
                    digest.update(block)
        finally:
            os.close(descriptor)
    except OSError as exc:
        return None, f"unreadable: {exc.strerror}"
    text = None
    if len(head) <= MAX_INCLUDE_SIZE:
        with contextlib.suppress(UnicodeDecodeError):
            text = head.decode("utf-8")
    return text, digest.hexdigest()


def _read_up_to(descriptor: int, size: int) -> bytes:
    chunks = []
    while size > 0:
        chunk = os.read(descriptor, size)
        if not chunk:
            break
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _rel(root: str, folder: str) -> str:
    rel = os.path.relpath(folder, root)
    return "." if rel == "." else rel.replace(os.sep, "/")


def read_snapshot(root: str | os.PathLike[str]) -> Snapshot:
    """Walk ROOT once; folders with a template and a changelog are images.

    Every other file belongs to the nearest image folder above it (its build context).
    """
    top = os.fspath(root)
    if not os.path.isdir(top):
        raise DockerPkgError.single(top, "not a directory")
    listing: dict[str, list[str]] = {}
    warnings: list[Problem] = []
    for current, dirs, files in os.walk(top):
        dirs.sort()
        listing[current] = sorted(files)
        has_template, has_changelog = TEMPLATE in files, CHANGELOG in files
        if has_template != has_changelog:
            missing = CHANGELOG if has_template else TEMPLATE
            warnings.append(warning(_rel(top, current), f"skipped: the folder has no {missing}"))
    image_dirs = sorted(
        d for d, files in listing.items() if TEMPLATE in files and CHANGELOG in files
    )
    owned: dict[str, list[str]] = {d: [] for d in image_dirs}
    for folder in listing:
        owner = folder
        while owner not in owned and owner != top and os.path.dirname(owner) != owner:
            owner = os.path.dirname(owner)
        if owner in owned:
            owned[owner].append(folder)
    problems: list[Problem] = []
    sources = []
    for folder in image_dirs:
        names: list[str] = []
        texts: list[tuple[str, str]] = []
        hashes: list[tuple[str, str]] = []
        for sub in sorted(owned[folder]):
            prefix = "" if sub == folder else _rel(folder, sub) + "/"
            for name in listing[sub]:
                names.append(prefix + name)
                text, digest = _read(os.path.join(sub, name))
                hashes.append((prefix + name, digest))
                if text is not None:
                    texts.append((prefix + name, text))
        text_map = dict(texts)
        rel = _rel(top, folder)
        unreadable = [n for n in (TEMPLATE, CHANGELOG) if n not in text_map]
        if unreadable:
            where = unreadable[0] if rel == "." else f"{rel}/{unreadable[0]}"
            problems.append(error(where, "cannot read: not UTF-8 text, or too large"))
            continue
        sources.append(
            ImageSource(
                path=rel,
                template=text_map[TEMPLATE],
                changelog=text_map[CHANGELOG],
                control=text_map.get(CONTROL),
                build_template=text_map.get(BUILD_TEMPLATE),
                files=tuple(texts),
                names=frozenset(names),
                hashes=tuple(hashes),
            )
        )
    if problems:
        raise DockerPkgError(problems + warnings)
    sources.sort(key=lambda s: s.path)
    return Snapshot(images=tuple(sources), warnings=tuple(sorted(warnings, key=str)))
