"""The files `refs` looks through: the paths given, folders walked (in a git checkout, what
git lists: tracked and untracked files not ignored by .gitignore), each file read once and
decoded only when it holds the needle (see dockerpkg.core.usages.needle)."""

from __future__ import annotations

import fnmatch
import os
import posixpath
from collections.abc import Iterator, Mapping, Sequence

from dockerpkg.core.usages import file_digest
from dockerpkg.effects.author import git
from dockerpkg.errors import DockerPkgError

_BINARY_PROBE = 8192  # bytes looked at for a NUL: a file holding one is not text
_LARGEST = 16 * 1024 * 1024  # bytes; larger files are not looked through


def _listed(folder: str, env: Mapping[str, str]) -> list[str] | None:
    """What git lists under FOLDER (relative paths), or None when it is no git checkout."""
    if git(["rev-parse", "--is-inside-work-tree"], env, folder) != "true":
        return None
    out = git(["ls-files", "-z", "--cached", "--others", "--exclude-standard"], env, folder)
    return [] if out is None else sorted({p for p in out.split("\0") if p})


def _walked(folder: str) -> list[str]:
    found = []
    for top, folders, files in os.walk(folder):
        folders[:] = sorted(f for f in folders if f != ".git")
        relative = os.path.relpath(top, folder)
        found += [posixpath.normpath(posixpath.join(relative, f)) for f in files]
    return sorted(found)


def candidate_files(
    paths: Sequence[str], ignore: Sequence[str], env: Mapping[str, str]
) -> Iterator[str]:
    """Each file under PATHS (as shown: the path given joined with the file's below it),
    once, but those matching an IGNORE glob and symbolic links (an edit through a link could
    land anywhere)."""
    seen: set[str] = set()
    for given in paths:
        if os.path.isfile(given):
            below = [""]
        elif os.path.isdir(given):
            listed = _listed(given, env)
            below = listed if listed is not None else _walked(given)
        else:
            raise DockerPkgError.single(given, "no such file or folder")
        for relative in below:
            shown = posixpath.normpath(posixpath.join(given, relative)) if relative else given
            if shown in seen or os.path.islink(shown):
                continue
            if any(fnmatch.fnmatch(shown, g) or fnmatch.fnmatch(relative, g) for g in ignore):
                continue
            seen.add(shown)
            yield shown


def read_candidates(
    shown: Iterator[str] | Sequence[str], needle: bytes | None
) -> tuple[list[tuple[str, str, str]], int]:
    """(path, text, digest of its bytes) of each file holding NEEDLE, and how many files
    were read; a file that vanished or cannot be read is skipped (it holds no reference
    dockerpkg could edit)."""
    found = []
    count = 0
    for path in shown:
        try:
            if os.path.getsize(path) > _LARGEST:
                continue
            with open(path, "rb") as handle:
                data = handle.read()
        except OSError:
            continue
        count += 1
        if needle is None or needle not in data or b"\0" in data[:_BINARY_PROBE]:
            continue
        found.append((path, data.decode("utf-8", "surrogateescape"), file_digest(data)))
    return found, count
