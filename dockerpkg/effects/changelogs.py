"""Write the changelog edits of an update plan, all or none, through the file-transaction
engine (dockerpkg.effects.filetx); and read back what an interrupted update left, to finish
or undo it.

What is the update's own: each target must still hold exactly the text the plan was made
from; the journal, `.dockerpkg-update.journal` in the tree's folder, lists each changelog,
the entry put in front of it and the digests of its text before and after; each new text is
staged as `.changelog.dockerpkg-tmp` beside its changelog (a name the snapshot leaves out).

A SIGKILL or a crash of the machine during the swap can leave some changelogs updated and
others not (each one whole, never half-written). The journal left behind says which update
it was and lets `recover` finish it (each changelog not yet written gets the journal's entry
over the text it had, checked against the digest the journal gives) or undo it (each
changelog written put back to its text before, checked the same way), so the tree ends all
updated or none.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import json
import os
from collections.abc import Mapping, Sequence

import attrs

from dockerpkg.core.editmatch import entry_problem
from dockerpkg.core.plan import Edit
from dockerpkg.core.planjson import MAX_PLAN_BYTES, loads
from dockerpkg.effects import filetx
from dockerpkg.effects.filetx import Replacer, Writer, signals_held, write_new_file
from dockerpkg.effects.workfiles import JOURNAL_NAME, JOURNAL_TEMP, TEMP_NAME
from dockerpkg.errors import DockerPkgError, Problem, error, warning

__all__ = [
    "JOURNAL_NAME",
    "TEMP_NAME",
    "Interrupted",
    "Replacer",
    "Writer",
    "apply_edits",
    "edited",
    "interrupted",
    "leftover_warning",
    "recover",
    "signals_held",
    "write_new_file",
]


def _wording(root: str) -> filetx.Wording:
    """How an update of the tree at ROOT words its errors."""
    return filetx.Wording(
        stage_failed="cannot write the new changelog: {cause}; nothing was changed",
        changed="changed while the update was written; make a new plan",
        replace_failed="cannot replace the changelog: {cause}",
        not_restored=(
            "these changelogs were updated and could not be put back: {files}; the others "
            "are unchanged"
        ),
        restored="nothing was changed",
        journal_failed="cannot write the update's journal: {cause}",
        journal_there=f"{_LEFT_BEHIND}: {_CHOICES.format(root)}",
        line=1,
    )


def _recovery_wording(root: str, *, resume: bool) -> filetx.Wording:
    """The errors of `update --resume` (RESUME) or `--discard`: the journal stays."""
    cannot = f"cannot {'finish' if resume else 'undo'} the interrupted update"
    kept = "its journal is kept, so running this again goes on"
    done = "finished" if resume else "undone"
    return attrs.evolve(
        _wording(root),
        stage_failed=f"{cannot}: {{cause}}; {kept}",
        changed=f"changed while the interrupted update was {done}; {kept}",
        replace_failed=f"{cannot}: {{cause}}",
        not_restored=f"these changelogs could not be put back: {{files}}; {kept}",
        restored=kept,
    )


def apply_edits(
    root: str,
    edits: Sequence[Edit],
    originals: Mapping[str, str],
    *,
    write: Writer = write_new_file,
    replace: Replacer | None = None,
) -> tuple[str, ...]:
    """Put each edit's entry in front of its changelog under ROOT; returns the paths written.

    ORIGINALS maps each edit's path (relative to ROOT) to the text the plan was made from.
    Raises DockerPkgError, with every changelog as it was, unless the swap itself fails in a
    way that cannot be undone (then the message says which files are in which state).
    """
    changes = _check(root, edits, originals)
    journal = filetx.Journal(
        os.path.join(root, JOURNAL_NAME), os.path.join(root, JOURNAL_TEMP), JOURNAL_NAME
    )
    record = {
        "format": 1,
        "changelogs": [
            {
                "path": edit.path,
                "entry": edit.entry,
                "before": _digest(change.before),
                "after": _digest(change.after),
            }
            for edit, change in zip(edits, changes, strict=True)
        ],
    }
    body = (json.dumps(record, indent=1) + "\n").encode("utf-8")
    filetx.commit(journal, body, changes, _wording(root), write=write, replace=replace)
    return tuple(edit.path for edit in edits)


def _check(root: str, edits: Sequence[Edit], originals: Mapping[str, str]) -> list[filetx.Change]:
    """Each edit as a change of its changelog, which must still hold the text the plan was
    made from, with no staged file beside it."""
    problems: list[Problem] = []
    changes: list[filetx.Change] = []
    seen: set[str] = set()
    for edit in edits:
        path = os.path.join(root, *edit.path.split("/"))
        staged = os.path.join(os.path.dirname(path), TEMP_NAME)
        expected = originals.get(edit.path)
        current = filetx.read_bytes(path)
        if edit.path in seen:
            problems.append(error(edit.path, "the plan edits this changelog twice"))
        elif expected is None:
            problems.append(error(edit.path, "not a changelog of the tree the plan was made for"))
        elif current is None:
            problems.append(error(edit.path, "cannot read the changelog"))
        elif current != expected.encode("utf-8"):
            problems.append(error(edit.path, "changed since the plan was made; make a new plan", 1))
        elif os.path.lexists(staged):
            problems.append(
                error(
                    _beside(edit.path),
                    "a staged changelog is already there, left by an interrupted update "
                    f"with no journal: dockerpkg update --discard {root} removes it",
                )
            )
        else:
            new = edit.entry.encode("utf-8") + current
            mode = os.stat(path).st_mode
            changes.append(filetx.Change(edit.path, path, staged, current, new, mode))
        seen.add(edit.path)
    if problems:
        raise DockerPkgError(problems)
    return changes


def _beside(path: str) -> str:
    """The staged file's path, relative to the tree like PATH."""
    folder = path.rpartition("/")[0]
    return f"{folder}/{TEMP_NAME}" if folder else TEMP_NAME


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
    raw = filetx.read_bytes(path)
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
        current = filetx.read_bytes(os.path.join(root, *relative.split("/")))
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
    leftovers = [os.path.join(root, *s.split("/")) for s in found.staged]
    if not found.journal:
        if resume:
            raise DockerPkgError.single(
                found.staged[0],
                "no journal says what these staged changelogs are for: they cannot be "
                f"finished; dockerpkg update --discard {root} removes them",
            )
        filetx.unlink_all(leftovers)
        return ()
    changes, problems = _recovery(root, found, resume=resume)
    if problems:
        raise DockerPkgError(problems)
    journal = os.path.join(root, JOURNAL_NAME)
    filetx.recover(journal, changes, leftovers, _recovery_wording(root, resume=resume))
    return tuple(change.shown for change in changes)


def _recovery(
    root: str, found: Interrupted, *, resume: bool
) -> tuple[list[filetx.Change], list[Problem]]:
    """Each changelog to rewrite to finish (RESUME) or undo FOUND, with its text; and why it
    cannot be done, if it cannot."""
    problems = [
        error(c.path, "changed since the interrupted update; put it back or edit it by hand", 1)
        for c in found.changelogs
        if c.state is State.CHANGED
    ]
    changes: list[filetx.Change] = []
    for changelog in found.changelogs:
        path = os.path.join(root, *changelog.path.split("/"))
        current = filetx.read_bytes(path) or b""
        entry = changelog.entry.encode("utf-8")
        text = None
        if resume and changelog.state is State.PENDING:
            # The journal's entry over the text before is the staged text, whether or not
            # staging got as far as this one.
            wrong = entry_problem(changelog.entry, current.decode("utf-8", "replace"))
            if wrong is not None:
                # A journal is a claim (a tree may come from anyone): only what update
                # itself would write is finished.
                problems.append(error(changelog.path, f"{wrong}; {_DISCARD}", 1))
            elif _digest(entry + current) != changelog.after:
                problems.append(error(changelog.path, "the journal's entry does not fit it", 1))
            else:
                text = entry + current
        elif not resume and changelog.state is State.WRITTEN:
            before = current[len(entry) :]
            wrong = entry_problem(changelog.entry, before.decode("utf-8", "replace"))
            if not current.startswith(entry) or _digest(before) != changelog.before:
                problems.append(error(changelog.path, "cannot take the update's entry out", 1))
            elif wrong is not None:
                problems.append(error(changelog.path, f"{wrong}; {_DISCARD}", 1))
            else:
                text = before
        if text is not None:
            # Staged afresh: what an interrupted staging left may be short.
            staged = os.path.join(os.path.dirname(path), TEMP_NAME)
            mode = os.stat(path).st_mode
            changes.append(filetx.Change(changelog.path, path, staged, current, text, mode))
    return changes, problems


def edited(root: str, edits: Sequence[Edit], originals: Mapping[str, str]) -> tuple[str, ...]:
    """The paths of the EDITS whose changelog under ROOT now starts with the edit's entry over
    the text the plan was made from: what an interrupted `apply_edits` did write."""
    done = []
    for edit in edits:
        original = originals.get(edit.path)
        current = filetx.read_bytes(os.path.join(root, *edit.path.split("/")))
        if original is not None and current == (edit.entry + original).encode("utf-8"):
            done.append(edit.path)
    return tuple(done)
