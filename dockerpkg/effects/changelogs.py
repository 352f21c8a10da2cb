"""Write the changelog edits of an update plan: all of them, or none.

1. Check: every target file still holds exactly the text the plan was made from.
2. Stage: write every new text to `.changelog.dockerpkg-tmp` beside its target (same folder,
   so the rename below never crosses file systems), with the target's permissions; then one
   `sync` makes them all durable (one call instead of an fsync per file: thousands of images).
   Any failure here removes every staged file: the changelogs were never touched.
3. Check again, then swap: `os.replace` each staged file over its target, then `sync` once
   more. SIGINT and SIGTERM are held back during the swap, so Ctrl-C cannot stop it half-way.
   If a rename fails, the files already swapped are put back from the texts read in step 1.

What remains: a rename is atomic for its own file, but there is no atomic rename of several
files. A crash of the machine or a SIGKILL during step 3, a window of one rename per changelog,
can leave some changelogs updated and others not (each one whole, never half-written); the
staged files left behind then show which were not swapped yet, and `git diff` shows the rest.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Iterator, Mapping, Sequence

import attrs

from dockerpkg.core.plan import Edit
from dockerpkg.errors import DockerPkgError, Problem, error

TEMP_NAME = ".changelog.dockerpkg-tmp"

# Creates PATH (which must not exist) holding DATA with MODE (apply_edits syncs afterwards).
Writer = Callable[[str, bytes, int], None]
# Renames the first path over the second, atomically (os.replace).
Replacer = Callable[[str, str], None]


def write_new_file(path: str, data: bytes, mode: int) -> None:
    """Create PATH exclusively and write DATA; the real writer."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        # Not the umask: the changelog keeps the permissions it had.
        os.fchmod(handle.fileno(), mode & 0o7777)
        handle.write(data)


@attrs.frozen
class _Target:
    edit: Edit
    path: str  # on disk
    temp: str
    original: bytes
    new: bytes
    mode: int


def apply_edits(
    root: str,
    edits: Sequence[Edit],
    originals: Mapping[str, str],
    *,
    write: Writer = write_new_file,
    replace: Replacer = os.replace,
) -> tuple[str, ...]:
    """Put each edit's entry in front of its changelog under ROOT; returns the paths written.

    ORIGINALS maps each edit's path (relative to ROOT) to the text the plan was made from.
    Raises DockerPkgError, with every changelog as it was, unless the swap itself fails in a
    way that cannot be undone (then the message says which files are in which state).
    """
    targets = _check(root, edits, originals)
    _stage(targets, write)
    try:
        os.sync()  # every staged text is on disk before any changelog is replaced
        _check_unchanged(targets)
        _swap(targets, write, replace)
    finally:
        _remove_staged(targets)
    return tuple(t.edit.path for t in targets)


def edited(root: str, edits: Sequence[Edit], originals: Mapping[str, str]) -> tuple[str, ...]:
    """The paths of the EDITS whose changelog under ROOT now starts with the edit's entry over
    the text the plan was made from: what an interrupted `apply_edits` did write."""
    done = []
    for edit in edits:
        original = originals.get(edit.path)
        current = _read(os.path.join(root, *edit.path.split("/")))
        if original is not None and current == (edit.entry + original).encode("utf-8"):
            done.append(edit.path)
    return tuple(done)


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return None


def _check(root: str, edits: Sequence[Edit], originals: Mapping[str, str]) -> list[_Target]:
    problems: list[Problem] = []
    targets: list[_Target] = []
    seen: set[str] = set()
    for edit in edits:
        path = os.path.join(root, *edit.path.split("/"))
        expected = originals.get(edit.path)
        current = _read(path)
        if edit.path in seen:
            problems.append(error(edit.path, "the plan edits this changelog twice"))
        elif expected is None:
            problems.append(error(edit.path, "not a changelog of the tree the plan was made for"))
        elif current is None:
            problems.append(error(edit.path, "cannot read the changelog"))
        elif current != expected.encode("utf-8"):
            problems.append(error(edit.path, "changed since the plan was made; make a new plan", 1))
        else:
            folder = os.path.dirname(path)
            targets.append(
                _Target(
                    edit=edit,
                    path=path,
                    temp=os.path.join(folder, TEMP_NAME),
                    original=current,
                    new=edit.entry.encode("utf-8") + current,
                    mode=os.stat(path).st_mode,
                )
            )
        seen.add(edit.path)
    if problems:
        raise DockerPkgError(problems)
    return targets


def _stage(targets: Sequence[_Target], write: Writer) -> None:
    """Write every new text beside its target; on failure remove what was staged and raise."""
    staged: list[_Target] = []
    try:
        for target in targets:
            if os.path.lexists(target.temp):
                raise DockerPkgError.single(
                    _beside(target.edit.path),
                    "a staged changelog is already there (left by an interrupted update?); "
                    "check the changelog beside it, then remove this file",
                )
            staged.append(target)
            try:
                write(target.temp, target.new, target.mode)
            except OSError as exc:
                raise DockerPkgError.single(
                    target.edit.path,
                    f"cannot write the new changelog: {exc.strerror or exc}; nothing was changed",
                ) from None
    except BaseException:
        _remove_staged(staged)
        raise


def _beside(path: str) -> str:
    """The staged file's path, relative to the tree like PATH."""
    folder = path.rpartition("/")[0]
    return f"{folder}/{TEMP_NAME}" if folder else TEMP_NAME


def _check_unchanged(targets: Sequence[_Target]) -> None:
    """A last look before swapping: someone may have edited a changelog meanwhile."""
    changed = [t for t in targets if _read(t.path) != t.original]
    if changed:
        raise DockerPkgError(
            [
                error(t.edit.path, "changed while the update was written; make a new plan", 1)
                for t in changed
            ]
        )


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold back SIGINT and SIGTERM (delivered when the block ends), where the OS allows."""
    held = {signal.SIGINT, signal.SIGTERM}
    try:
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    except (AttributeError, OSError, ValueError):
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _swap(targets: Sequence[_Target], write: Writer, replace: Replacer) -> None:
    done: list[_Target] = []
    with _signals_held():
        try:
            for target in targets:
                replace(target.temp, target.path)
                done.append(target)
        except OSError as exc:
            failed = targets[len(done)]
            _undo(done, write, replace, failed, exc)
        os.sync()  # and the renames are durable


def _undo(
    done: Sequence[_Target],
    write: Writer,
    replace: Replacer,
    failed: _Target,
    cause: OSError,
) -> None:
    """Put back the changelogs already swapped, then raise saying what state each is in."""
    not_restored: list[str] = []
    for target in reversed(done):
        try:
            if os.path.lexists(target.temp):
                os.unlink(target.temp)
            write(target.temp, target.original, target.mode)
            replace(target.temp, target.path)
        except OSError:
            not_restored.append(target.edit.path)
    reason = f"cannot replace the changelog: {cause.strerror or cause}"
    if not_restored:
        reason += (
            "; these changelogs were updated and could not be put back: "
            + ", ".join(sorted(not_restored))
            + "; the others are unchanged"
        )
    else:
        reason += "; nothing was changed"
    raise DockerPkgError.single(failed.edit.path, reason)


def _remove_staged(targets: Sequence[_Target]) -> None:
    # Held: a second Ctrl-C must not leave staged files behind.
    with _signals_held():
        for target in targets:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(target.temp)
