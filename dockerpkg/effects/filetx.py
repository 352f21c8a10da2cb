"""Several files written all or none, and the recovery of a write that was killed: the one
transaction engine of `update` (changelog entries) and `refs` (the files that use the tree's
images; `update --refs` writes both in one transaction).

`commit`, in order:

1. Journal: the caller's record of what is about to be written (its own format: only the
   caller knows what may be derived again from it) is written aside, synced, and linked into
   place, so it is whole or absent whenever the process dies. One already there belongs to
   an unfinished run: refused, nothing touched.
2. Stage: every new text is written beside its target (same folder, so the rename below
   never crosses file systems), with the target's permissions; then one `sync` makes them all
   durable (one call instead of an fsync per file: thousands of changelogs). A failure, or
   Ctrl-C, removes every staged file: no target was touched.
3. Check: each target still holds the text the change was made from (someone may have
   edited it meanwhile); otherwise nothing is touched.
4. Swap: `os.replace` each staged file over its target with SIGINT and SIGTERM held back (so
   Ctrl-C cannot stop it half-way), then `sync`. If a rename fails, the targets already
   swapped are put back from the texts read at the start.
5. The journal goes once every target holds its new text, or none does.

A rename is atomic for its own file, but several files have no atomic rename: a SIGKILL or a
crash during step 4 leaves some targets written and the others not, each one whole. The
journal left behind says so. The caller reads it back, checks it (a tree may come from
anyone: a journal is a claim), decides which texts finish or undo the write, and hands them
to `recover`, which carries them out through steps 2 to 4 and removes the journal: the one
recovery path.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Iterable, Iterator, Sequence

import attrs

from dockerpkg.errors import DockerPkgError, error

__all__ = [
    "Change",
    "Journal",
    "Replacer",
    "Wording",
    "Writer",
    "commit",
    "read_bytes",
    "recover",
    "signals_held",
    "unlink_all",
    "write_new_file",
]

# Creates PATH (which must not exist) holding DATA with MODE (the engine syncs afterwards).
Writer = Callable[[str, bytes, int], None]
# Renames the first path over the second, atomically (os.replace).
Replacer = Callable[[str, str], None]


def write_new_file(path: str, data: bytes, mode: int) -> None:
    """Create PATH exclusively and write DATA; the real writer."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        # Not the umask: the file keeps the permissions it had.
        os.fchmod(handle.fileno(), mode & 0o7777)
        handle.write(data)


@attrs.frozen
class Change:
    """One file's new text: how errors name it, where it is on disk, where its new text is
    staged (beside it), its text when the change was made, the new one, its permissions."""

    shown: str
    path: str
    staged: str
    before: bytes
    after: bytes
    mode: int


@attrs.frozen
class Journal:
    """Where a transaction's journal goes, where it is written first, how errors name it."""

    path: str
    aside: str
    shown: str


@attrs.frozen
class Wording:
    """How one kind of transaction words its errors (`{cause}`: the system's reason;
    `{files}`: the targets that could not be put back). LINE: the line each error about a
    target names (a changelog's first, where its entry goes), if any."""

    stage_failed: str
    changed: str
    replace_failed: str
    not_restored: str
    restored: str
    journal_failed: str
    journal_there: str
    line: int | None = None


def commit(
    journal: Journal,
    record: bytes,
    changes: Sequence[Change],
    wording: Wording,
    *,
    write: Writer = write_new_file,
    replace: Replacer | None = None,
) -> None:
    """Write every change or none, RECORD (the caller's journal) kept at JOURNAL meanwhile.
    Raises DockerPkgError with every target as it was, unless the swap fails in a way that
    cannot be undone (then the message says which files are in which state)."""
    if not changes:
        return
    _write_journal(journal, record, wording)
    finished = False
    try:
        _carry_out(changes, wording, write, replace or os.replace)
        finished = True
    finally:
        # Gone once every target is as it should be: all written, or (a failure before or
        # during the swap, undone) none. A signal held back during the swap arrives after
        # it: all written is done too. (Finished, the targets are not read again.)
        with signals_held(), contextlib.suppress(FileNotFoundError):
            written = [] if finished else [read_bytes(c.path) == c.after for c in changes]
            if finished or all(written) or not any(written):
                os.unlink(journal.path)


def recover(
    journal: str,
    changes: Sequence[Change],
    leftovers: Iterable[str],
    wording: Wording,
    *,
    write: Writer = write_new_file,
    replace: Replacer | None = None,
) -> None:
    """End the interrupted transaction whose journal is at JOURNAL: remove LEFTOVERS (what it
    staged), write CHANGES (the texts that finish or undo it, as the caller read its journal)
    all or none, then remove the journal. On failure the journal is kept: running again goes
    on from where the files are."""
    unlink_all(leftovers)
    finished = False
    try:
        _carry_out(changes, wording, write, replace or os.replace)
        finished = True
    finally:
        with signals_held(), contextlib.suppress(FileNotFoundError):
            if finished or all(read_bytes(c.path) == c.after for c in changes):
                os.unlink(journal)


def _write_journal(journal: Journal, record: bytes, wording: Wording) -> None:
    if os.path.lexists(journal.path):
        raise DockerPkgError.single(journal.shown, wording.journal_there)
    linked = False
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(journal.aside)
        write_new_file(journal.aside, record, 0o644)
        os.sync()
        os.link(journal.aside, journal.path)  # whole or absent, whenever the process dies
        linked = True
        os.unlink(journal.aside)
    except OSError as exc:
        # A journal linked meanwhile by another run is that run's: it stays.
        unlink_all([journal.aside, journal.path] if linked else [journal.aside])
        message = wording.journal_failed.format(cause=exc.strerror or exc)
        raise DockerPkgError.single(journal.shown, message) from None


def _carry_out(
    changes: Sequence[Change], wording: Wording, write: Writer, replace: Replacer
) -> None:
    _stage(changes, wording, write)
    try:
        os.sync()  # every staged text is on disk before any target is replaced
        _check_unchanged(changes, wording)
        _swap(changes, wording, write, replace)
    finally:
        _remove_staged(changes)


def _stage(changes: Sequence[Change], wording: Wording, write: Writer) -> None:
    """Write every new text beside its target; on failure remove what was staged and raise."""
    staged: list[Change] = []
    try:
        for change in changes:
            staged.append(change)  # before writing: an interrupted write leaves part of it
            try:
                write(change.staged, change.after, change.mode)
            except OSError as exc:
                if isinstance(exc, FileExistsError):
                    staged.pop()  # not this run's file: it stays
                message = wording.stage_failed.format(cause=exc.strerror or exc)
                raise DockerPkgError.single(change.shown, message) from None
    except BaseException:
        _remove_staged(staged)
        raise


def _check_unchanged(changes: Sequence[Change], wording: Wording) -> None:
    """A last look before swapping: someone may have edited a target meanwhile."""
    changed = [c for c in changes if read_bytes(c.path) != c.before]
    if changed:
        raise DockerPkgError([error(c.shown, wording.changed, wording.line) for c in changed])


def _swap(changes: Sequence[Change], wording: Wording, write: Writer, replace: Replacer) -> None:
    done: list[Change] = []
    with signals_held():
        try:
            for change in changes:
                replace(change.staged, change.path)
                done.append(change)
        except OSError as exc:
            _undo(done, changes[len(done)], exc, wording=wording, write=write, replace=replace)
        os.sync()  # and the renames are durable


def _undo(
    done: Sequence[Change],
    failed: Change,
    cause: OSError,
    *,
    wording: Wording,
    write: Writer,
    replace: Replacer,
) -> None:
    """Put back the targets already swapped, then raise saying what state each is in."""
    not_restored: list[str] = []
    for change in reversed(done):
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(change.staged)
            write(change.staged, change.before, change.mode)
            replace(change.staged, change.path)
        except OSError:
            not_restored.append(change.shown)
    reason = wording.replace_failed.format(cause=cause.strerror or cause) + "; "
    if not_restored:
        reason += wording.not_restored.format(files=", ".join(sorted(not_restored)))
    else:
        reason += wording.restored
    raise DockerPkgError.single(failed.shown, reason)


def _remove_staged(changes: Sequence[Change]) -> None:
    # Held: a second Ctrl-C must not leave staged files behind.
    with signals_held():
        unlink_all(c.staged for c in changes)


def unlink_all(paths: Iterable[str]) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def read_bytes(path: str) -> bytes | None:
    """The bytes of the file at PATH, or None when it cannot be read."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return None


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
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
