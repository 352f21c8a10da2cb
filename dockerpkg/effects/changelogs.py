"""Write the changelog edits of an update plan: all of them, or none.

1. Check: every target file still holds exactly the text the plan was made from. Then write
   the journal, `.dockerpkg-update.journal` in the tree's folder: each changelog, the entry
   put in front of it, and the digests of its text before and after (synced before anything
   else is written).
2. Stage: write every new text to `.changelog.dockerpkg-tmp` beside its target (same folder,
   so the rename below never crosses file systems), with the target's permissions; then one
   `sync` makes them all durable (one call instead of an fsync per file: thousands of images).
   Any failure here removes every staged file: the changelogs were never touched.
3. Check again, then swap: `os.replace` each staged file over its target, then `sync` once
   more. SIGINT and SIGTERM are held back during the swap, so Ctrl-C cannot stop it half-way.
   If a rename fails, the files already swapped are put back from the texts read in step 1.

4. Remove the journal: the update is done.

A rename is atomic for its own file, but there is no atomic rename of several files: a crash
of the machine or a SIGKILL during step 3 can leave some changelogs updated and others not
(each one whole, never half-written). The journal left behind says which update it was and
lets `recover` finish it (each changelog not yet written gets the journal's entry over the text
it had, checked against the digest the journal gives) or undo it (each changelog written put
back to its text before, checked the same way), so the tree ends all updated or none.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import json
import os
import signal
from collections.abc import Callable, Iterator, Mapping, Sequence

import attrs

from dockerpkg.core.editmatch import entry_problem
from dockerpkg.core.plan import Edit
from dockerpkg.core.planjson import MAX_PLAN_BYTES, loads
from dockerpkg.effects.workfiles import JOURNAL_NAME, JOURNAL_TEMP, TEMP_NAME
from dockerpkg.errors import DockerPkgError, Problem, error, warning

__all__ = [
    "JOURNAL_NAME",
    "TEMP_NAME",
    "Interrupted",
    "apply_edits",
    "interrupted",
    "recover",
    "signals_held",
    "write_new_file",
]

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
    journal = _write_journal(root, targets)
    finished = False
    try:
        _stage(root, targets, write)
        try:
            os.sync()  # every staged text is on disk before any changelog is replaced
            _check_unchanged(targets)
            _swap(targets, write, replace)
        finally:
            _remove_staged(targets)
        finished = True
    finally:
        # Gone once every changelog is as it should be: all written, or (a failure before
        # or during the swap, undone) none.
        with signals_held(), contextlib.suppress(FileNotFoundError):
            # A signal held back during the swap arrives after it: all written is done too.
            # (Finished, the changelogs are not read again: thousands of reads.)
            if finished or _all_or_none(targets):
                os.unlink(journal)
    return tuple(t.edit.path for t in targets)


def _all_or_none(targets: Sequence[_Target]) -> bool:
    """Whether every changelog holds its new text, or none does."""
    written = [_read(t.path) == t.new for t in targets]
    return all(written) or not any(written)


def _write_journal(root: str, targets: Sequence[_Target]) -> str:
    path = os.path.join(root, JOURNAL_NAME)
    if os.path.lexists(path):
        raise DockerPkgError.single(JOURNAL_NAME, _LEFT_BEHIND + ": " + _CHOICES.format(root))
    body = {
        "format": 1,
        "changelogs": [
            {
                "path": t.edit.path,
                "entry": t.edit.entry,
                "before": _digest(t.original),
                "after": _digest(t.new),
            }
            for t in targets
        ],
    }
    # Written aside and linked into place: a journal is whole or absent, whenever the
    # process dies (one left aside means no changelog was touched yet).
    aside = os.path.join(root, JOURNAL_TEMP)
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(aside)
        write_new_file(aside, (json.dumps(body, indent=1) + "\n").encode("utf-8"), 0o644)
        os.sync()
        os.link(aside, path)
        os.unlink(aside)
    except OSError as exc:
        for leftover in (aside, path):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(leftover)
        raise DockerPkgError.single(
            JOURNAL_NAME, f"cannot write the update's journal: {exc.strerror or exc}"
        ) from None
    return path


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


_DISCARD = (
    f"not finished: the journal asks for what update would not write; nothing was changed "
    f"(to discard the journal without undoing anything, remove {JOURNAL_NAME} from the tree)"
)
_LEFT_BEHIND = "an interrupted update left its journal here"
_CHOICES = "dockerpkg update --resume {0} finishes it, dockerpkg update --discard {0} undoes it"


# --- an interrupted update -------------------------------------------------------------------


class State(enum.Enum):
    WRITTEN = "written"  # holds the new text
    PENDING = "pending"  # holds the text before; its staged text waits beside it
    CHANGED = "changed"  # neither: someone edited it since


@attrs.frozen
class _Journaled:
    path: str  # relative to the tree
    entry: str
    before: str
    after: str
    state: State


@attrs.frozen
class Interrupted:
    """What an interrupted update left in a tree: its journal's changelogs, by state, and the
    staged files found (with or without a journal)."""

    directory: str  # the tree, as given
    changelogs: tuple[_Journaled, ...]
    staged: tuple[str, ...]
    journal: bool

    def count(self, state: State) -> int:
        return sum(1 for c in self.changelogs if c.state is state)

    @property
    def who(self) -> str:
        """The update's signature line (author and date), as its entries give it."""
        for changelog in self.changelogs:
            for line in reversed(changelog.entry.splitlines()):
                if line.startswith(" -- "):
                    return line[4:].strip()
        return "an unknown update"

    def summary(self) -> str:
        if not self.journal:
            return (
                f"{len(self.staged)} staged changelog(s) left by an interrupted update, with "
                f"no journal (first: {self.staged[0]}); dockerpkg update --discard "
                f"{self.directory} removes them"
            )
        total = len(self.changelogs)
        return (
            f"an interrupted update ({self.who}) wrote {self.count(State.WRITTEN)} of its "
            f"{total} changelog(s); {len(self.staged)} staged file(s) wait beside the "
            f"others; {_CHOICES.format(self.directory)}"
        )


def interrupted(root: str, staged: Sequence[str]) -> Interrupted | None:
    """What an interrupted update left under ROOT (STAGED: the staged files the snapshot
    found, relative), or None when nothing."""
    path = os.path.join(root, JOURNAL_NAME)
    with contextlib.suppress(OSError):
        if os.path.getsize(path) > MAX_PLAN_BYTES:  # a journal is a plan's size at most
            raise DockerPkgError.single(JOURNAL_NAME, "not a dockerpkg update journal: too large")
    raw = _read(path)
    staged = tuple(s for s in staged if s.rpartition("/")[2] == TEMP_NAME)
    if raw is None:
        return Interrupted(root, (), staged, journal=False) if staged else None
    try:
        body = loads(raw.decode("utf-8"), JOURNAL_NAME, "dockerpkg update journal")
        listed = [
            (str(c["path"]), str(c["entry"]), str(c["before"]), str(c["after"]))
            for c in body["changelogs"]  # type: ignore[index]
        ]
    except (ValueError, KeyError, TypeError, DockerPkgError):
        raise DockerPkgError.single(JOURNAL_NAME, "not a dockerpkg update journal") from None
    outside = [p for p, *_ in listed if not _journal_path(p) or not _inside(root, p)]
    if outside:
        raise DockerPkgError.single(
            JOURNAL_NAME,
            f"not a dockerpkg update journal: {outside[0]!r} is not a changelog in the tree",
        )
    changelogs = []
    for relative, entry, before, after in listed:
        current = _read(os.path.join(root, *relative.split("/")))
        digest = None if current is None else _digest(current)
        state = {after: State.WRITTEN, before: State.PENDING}.get(digest or "", State.CHANGED)
        changelogs.append(_Journaled(relative, entry, before, after, state))
    return Interrupted(root, tuple(changelogs), staged, journal=True)


def _journal_path(relative: object) -> bool:
    """Whether a journal's path names a changelog inside the tree (a journal committed by
    mistake must not make recovery write anywhere else)."""
    if not isinstance(relative, str) or relative.startswith("/") or "\\" in relative:
        return False
    if "\x00" in relative:
        return False
    parts = relative.split("/")
    return parts[-1] == "changelog" and not any(p in ("", ".", "..") for p in parts)


def _inside(root: str, relative: str) -> bool:
    """Whether RELATIVE, links resolved, is still a file inside ROOT (a link committed into
    the tree may lead a journal's write elsewhere)."""
    tree = os.path.realpath(root)
    return os.path.realpath(os.path.join(root, *relative.split("/"))).startswith(tree + os.sep)


def leftover_warning(found: Interrupted | None) -> list[Problem]:
    return (
        []
        if found is None
        else [warning(JOURNAL_NAME if found.journal else found.staged[0], found.summary())]
    )


def recover(root: str, found: Interrupted, *, resume: bool) -> tuple[str, ...]:
    """Finish (RESUME) or undo the interrupted update FOUND under ROOT, all or nothing as far
    as renames go; returns the changelogs written. Raises DockerPkgError, changing nothing,
    when a changelog or a staged text is not what the journal says."""
    if not found.journal:
        if resume:
            raise DockerPkgError.single(
                found.staged[0],
                "no journal says what these staged changelogs are for: they cannot be "
                f"finished; dockerpkg update --discard {root} removes them",
            )
        _unlink_all(os.path.join(root, *s.split("/")) for s in found.staged)
        return ()
    moves, problems = _recovery(root, found, resume=resume)
    if problems:
        raise DockerPkgError(problems)
    try:
        return _recover_moves(root, found, moves)
    except OSError as exc:
        raise DockerPkgError.single(
            exc.filename or JOURNAL_NAME,
            f"cannot {'finish' if resume else 'undo'} the interrupted update: "
            f"{exc.strerror or exc}; its journal is kept, so running this again goes on",
        ) from None


def _recover_moves(
    root: str, found: Interrupted, moves: Sequence[tuple[_Journaled, bytes]]
) -> tuple[str, ...]:
    written: list[str] = []
    with signals_held():
        for changelog, text in moves:
            path = os.path.join(root, *changelog.path.split("/"))
            staged = os.path.join(os.path.dirname(path), TEMP_NAME)
            # Staged afresh: what an interrupted staging left may be short.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(staged)
            write_new_file(staged, text, os.stat(path).st_mode)
            written.append(changelog.path)
        os.sync()
        for changelog, _ in moves:
            path = os.path.join(root, *changelog.path.split("/"))
            os.replace(os.path.join(os.path.dirname(path), TEMP_NAME), path)
        os.sync()
        _unlink_all(os.path.join(root, *s.split("/")) for s in found.staged)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(root, JOURNAL_NAME))
    return tuple(written)


def _recovery(
    root: str, found: Interrupted, *, resume: bool
) -> tuple[list[tuple[_Journaled, bytes]], list[Problem]]:
    """Each changelog to rewrite to finish (RESUME) or undo FOUND, with its text; and why it
    cannot be done, if it cannot."""
    problems = [
        error(c.path, "changed since the interrupted update; put it back or edit it by hand", 1)
        for c in found.changelogs
        if c.state is State.CHANGED
    ]
    moves: list[tuple[_Journaled, bytes]] = []  # each changelog to rewrite, with its text
    for changelog in found.changelogs:
        current = _read(os.path.join(root, *changelog.path.split("/"))) or b""
        entry = changelog.entry.encode("utf-8")
        if resume and changelog.state is State.PENDING:
            # The journal's entry over the text before is the staged text, whether or not
            # staging got as far as this one.
            text = entry + current
            wrong = entry_problem(changelog.entry, current.decode("utf-8", "replace"))
            if wrong is not None:
                # A journal is a claim (a tree may come from anyone): only what update
                # itself would write is finished.
                problems.append(error(changelog.path, f"{wrong}; {_DISCARD}", 1))
            elif _digest(text) != changelog.after:
                problems.append(error(changelog.path, "the journal's entry does not fit it", 1))
            else:
                moves.append((changelog, text))
        elif not resume and changelog.state is State.WRITTEN:
            before = current[len(entry) :]
            wrong = entry_problem(changelog.entry, before.decode("utf-8", "replace"))
            if not current.startswith(entry) or _digest(before) != changelog.before:
                problems.append(error(changelog.path, "cannot take the update's entry out", 1))
            elif wrong is not None:
                problems.append(error(changelog.path, f"{wrong}; {_DISCARD}", 1))
            else:
                moves.append((changelog, before))
    return moves, problems


def _unlink_all(paths: Iterator[str] | Sequence[str]) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


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


def _stage(root: str, targets: Sequence[_Target], write: Writer) -> None:
    """Write every new text beside its target; on failure remove what was staged and raise."""
    staged: list[_Target] = []
    try:
        for target in targets:
            if os.path.lexists(target.temp):
                raise DockerPkgError.single(
                    _beside(target.edit.path),
                    "a staged changelog is already there, left by an interrupted update "
                    f"with no journal: dockerpkg update --discard {root} removes it",
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


def _swap(targets: Sequence[_Target], write: Writer, replace: Replacer) -> None:
    done: list[_Target] = []
    with signals_held():
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
    with signals_held():
        for target in targets:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(target.temp)
