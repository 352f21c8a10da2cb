"""The files `refs` looks through: the paths given, folders walked (in a git checkout, what
git lists: tracked and untracked files not ignored by .gitignore), each file read once and
decoded only when it holds the needle (see dockerpkg.core.refsplan.needle)."""

from __future__ import annotations

import fnmatch
import mmap
import os
import posixpath
from collections.abc import Iterator, Mapping, Sequence

import attrs

from dockerpkg.core.refsplan import SkippedFile, SkipReason, file_digest
from dockerpkg.effects.author import git
from dockerpkg.errors import DockerPkgError

_BINARY_PROBE = 8192  # bytes looked at for a NUL: a file holding one is not text
_LARGEST = 16 * 1024 * 1024  # bytes; larger files are not read whole (only searched)
_UTF16_MARKS = (b"\xff\xfe", b"\xfe\xff")  # the byte order marks of UTF-16 LE and BE


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


@attrs.frozen
class Candidates:
    """What reading the candidate files gave."""

    files: list[
        tuple[str, str, str]
    ]  # (path, text, digest of its bytes) of each holding the needle
    count: int  # files read
    skipped: tuple[SkippedFile, ...]  # files that may hold references, not looked through
    unedited: frozenset[str]  # files read but not to be written (UTF-16)


def read_candidates(shown: Iterator[str] | Sequence[str], needle: bytes | None) -> Candidates:
    """Each file holding NEEDLE, decoded (UTF-8, or UTF-16 with its byte order mark), and the
    files that may hold it but were not looked through: too large, binary, unreadable. A file
    that vanished is left out (it holds no reference dockerpkg could edit)."""
    found = []
    skipped: list[SkippedFile] = []
    unedited: set[str] = set()
    count = 0
    shown_needle = "" if needle is None else needle.decode()
    for path in shown:
        try:
            if os.path.getsize(path) > _LARGEST:
                if needle is not None and _holds(path, needle):
                    detail = f"larger than {_LARGEST // 2**20} MiB, and holds '{shown_needle}'"
                    skipped.append(SkippedFile(path, SkipReason.TOO_LARGE, detail))
                continue
            with open(path, "rb") as handle:
                data = handle.read()
        except FileNotFoundError:
            continue
        except OSError as exc:
            if needle is not None:
                detail = f"cannot read it: {exc.strerror or exc}"
                skipped.append(SkippedFile(path, SkipReason.UNREADABLE, detail))
            continue
        count += 1
        if needle is None:
            continue
        if data[:2] in _UTF16_MARKS:
            text = data.decode("utf-16", "replace")  # the mark says which order
            if shown_needle in text:
                found.append((path, text, file_digest(data)))
                unedited.add(path)
            continue
        if b"\0" in data[:_BINARY_PROBE]:
            if any(form in data for form in _forms(needle)):
                detail = f"binary (a NUL byte in its first 8 KiB), and holds '{shown_needle}'"
                skipped.append(SkippedFile(path, SkipReason.BINARY, detail))
            continue
        if needle in data:
            found.append((path, data.decode("utf-8", "surrogateescape"), file_digest(data)))
    return Candidates(found, count, tuple(skipped), frozenset(unedited))


def _forms(needle: bytes) -> tuple[bytes, ...]:
    """NEEDLE as UTF-8 and as UTF-16 of either byte order (a file without its mark)."""
    text = needle.decode()
    return needle, text.encode("utf-16-le"), text.encode("utf-16-be")


def _holds(path: str, needle: bytes) -> bool:
    """Whether the file at PATH holds NEEDLE in any of its forms, read through a memory map
    (a file too large to read whole)."""
    try:
        with (
            open(path, "rb") as handle,
            mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as view,
        ):
            return any(view.find(form) >= 0 for form in _forms(needle))
    except (OSError, ValueError):
        return True  # it cannot be searched: it may hold references
